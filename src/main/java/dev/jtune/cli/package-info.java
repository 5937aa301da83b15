/**
 * The {@code jtune} command line (picocli): one class per command, each a thin shell over {@link dev.jtune.api} and the
 * internal packages. What only a command line does lives here: exit codes, JSON output, the signal handlers that
 * checkpoint on SIGTERM ({@link dev.jtune.cli.SignalStop}), the memory check's refusal before a run
 * ({@link dev.jtune.cli.MemoryCheck}). Nothing imports this package. Internal: not a stable API.
 */
package dev.jtune.cli;
