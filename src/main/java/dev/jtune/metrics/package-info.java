/**
 * What a training run tells its user: {@code metrics.jsonl} ({@link dev.jtune.metrics.MetricsLog}),
 * TensorBoard event files ({@link dev.jtune.metrics.TensorBoardWriter}), the console progress bar
 * ({@link dev.jtune.metrics.ProgressDisplay}), and at the end the warnings about classic fine-tuning
 * traps ({@link dev.jtune.metrics.RunDiagnostics}) in a self-contained HTML report
 * ({@link dev.jtune.metrics.HtmlReport}). Internal: not a stable API.
 */
package dev.jtune.metrics;
