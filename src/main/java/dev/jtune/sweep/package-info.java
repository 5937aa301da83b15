/**
 * {@code jtune sweep} and {@code jtune lr-find}: hyperparameter trials (random or grid, ASHA pruning as a
 * {@link dev.jtune.api.TrainerCallback}) run through {@link dev.jtune.api.Trainer}, their leaderboard and page, and the
 * learning-rate range test. Internal: not a stable API.
 */
package dev.jtune.sweep;
