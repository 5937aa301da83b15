/**
 * {@code jtune drift}: how a trained model and its data have moved since training, from new labelled rows or the
 * prompts in {@code jtune serve}'s request log, each signal measured beside its baseline on the run's own test split.
 * Internal: not a stable API.
 */
package dev.jtune.drift;
