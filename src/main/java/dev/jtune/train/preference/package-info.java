/**
 * Preference tuning (DPO, ORPO, SimPO, KTO): each method's loss over chosen/rejected pairs as the training step's
 * {@link dev.jtune.train.step.StepLoss}, and the reference model's log-probabilities. Internal: not a stable API.
 */
package dev.jtune.train.preference;
