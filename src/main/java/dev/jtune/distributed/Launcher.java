package dev.jtune.distributed;

import com.sun.jna.Library;
import com.sun.jna.Native;
import dev.jtune.util.UserError;
import sun.misc.Signal;
import sun.misc.SignalHandler;

import java.io.IOException;
import java.io.PrintStream;
import java.lang.management.ManagementFactory;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;

/**
 * jtune's own single-node launcher ({@code jtune train exp.yaml --nproc-per-node N}), for users without Python's
 * torchrun: starts N copies of the same command with the variables torchrun would set (RANK, LOCAL_RANK,
 * WORLD_SIZE, LOCAL_WORLD_SIZE, MASTER_ADDR=127.0.0.1, MASTER_PORT), and behaves like torchrun around them:
 * <ul>
 *   <li>rank 0 prints to this console; rank K ≥ 1 writes {@code <logDir>/rankK.log} (stdout and stderr, appended);</li>
 *   <li>SIGINT and SIGTERM sent to the launcher are forwarded, as the same signal, to every rank still running;</li>
 *   <li>when a rank fails, the others get SIGTERM, then SIGKILL after a grace period, and the launcher exits with
 *       the failed rank's code (128 + n for a rank killed by signal n); 0 when every rank exits 0.</li>
 * </ul>
 * The ranks run in their own session (through {@code setsid} where it exists) so that a Ctrl-C on the terminal
 * reaches them once, through the launcher, rather than twice (jtune's trainer treats a second signal as "exit
 * now, without a checkpoint"). Each rank also exits when the launcher disappears ({@link #exitWithLauncher}).
 */
public final class Launcher {
    /** How long the other ranks get between SIGTERM and SIGKILL after a failure (torchrun waits 30 s too). */
    public static final Duration DEFAULT_GRACE = Duration.ofSeconds(30);
    /** Set in each rank's environment: the launcher's pid (also tells LaunchEnv the source is "jtune"). */
    public static final String LAUNCHER_PID = "JTUNE_LAUNCHER_PID";

    /**
     * @param nprocPerNode how many ranks to start
     * @param masterPort   the store's port, or null for a free one
     * @param logDir       where ranks 1..N-1 write rankK.log (created)
     * @param grace        SIGTERM-to-SIGKILL time for the other ranks after one fails
     */
    public record Options(int nprocPerNode, Integer masterPort, Path logDir, Duration grace) {}

    private record Exit(int rank, int code) {}

    private final Options options;
    private final PrintStream console;
    private final List<Process> ranks = new ArrayList<>();
    private final BlockingQueue<Exit> exits = new LinkedBlockingQueue<>();

    private Launcher(Options options, PrintStream console) {
        this.options = options;
        this.console = console;
    }

    /**
     * Starts the ranks, waits for all of them, and returns the exit code for the launcher.
     *
     * @param command  a rank's command line, the same for every rank (e.g. {@link #javaCommand})
     * @param console  where the launcher's own lines go (stderr, so that rank 0's stdout stays clean, e.g. --json)
     */
    public static int run(Options options, List<String> command, PrintStream console) {
        return new Launcher(options, console).launch(command);
    }

    /** The command that runs {@code mainClass} in a JVM like this one: same java binary, JVM options and class path. */
    public static List<String> javaCommand(Class<?> mainClass, List<String> args) {
        String java = ProcessHandle.current().info().command()
                .orElse(Path.of(System.getProperty("java.home"), "bin", "java").toString());
        List<String> cmd = new ArrayList<>(List.of(java));
        for (String a : ManagementFactory.getRuntimeMXBean().getInputArguments()) {
            if (a.startsWith("-agentlib:jdwp") || a.startsWith("-Xrunjdwp")) continue;   // a debugger port cannot be shared
            cmd.add(a);
        }
        cmd.addAll(List.of("-cp", System.getProperty("java.class.path"), mainClass.getName()));
        cmd.addAll(args);
        return cmd;
    }

    /** {@code args} without the launcher's own options ({@code --nproc-per-node N}, {@code --master-port=P}, …). */
    public static List<String> withoutOptions(List<String> args, String... options) {
        List<String> out = new ArrayList<>();
        for (int i = 0; i < args.size(); i++) {
            String a = args.get(i);
            boolean skipped = false;
            for (String o : options) {
                if (a.equals(o)) {
                    i++;   // and its value
                    skipped = true;
                } else if (a.startsWith(o + "=")) {
                    skipped = true;
                }
            }
            if (!skipped) out.add(a);
        }
        return out;
    }

    /**
     * In a rank started by this launcher: exit when the launcher is gone (killed with SIGKILL, say), so that no
     * rank outlives it in its own session. Does nothing in any other process.
     */
    public static void exitWithLauncher() {
        String pid = System.getenv(LAUNCHER_PID);
        if (pid == null) return;
        try {
            ProcessHandle.of(Long.parseLong(pid.trim())).ifPresentOrElse(h -> h.onExit().thenRun(Launcher::orphaned), Launcher::orphaned);
        } catch (NumberFormatException e) {
            // not ours to judge; LaunchEnv does not read this value
        }
    }

    private static void orphaned() {
        System.err.println("jtune: the launcher that started this rank is gone; exiting");
        Runtime.getRuntime().halt(1);
    }

    private int launch(List<String> command) {
        int n = options.nprocPerNode();
        if (n < 1) throw new UserError("--nproc-per-node " + n + ": expected at least 1 process");
        LaunchEnv.fromEnvironment(System.getenv()).filter(LaunchEnv::distributed).ifPresent(e -> {
            throw new UserError("--nproc-per-node: this process already runs as rank " + e.rank() + " of " + e.worldSize() + " (started by "
                    + e.source() + "); the built-in launcher starts the ranks of one node itself: drop --nproc-per-node, or start jtune once");
        });
        int port = options.masterPort() != null ? checkedPort(options.masterPort()) : freePort();
        Path logDir = options.logDir();
        try {
            if (n > 1) Files.createDirectories(logDir);
        } catch (IOException e) {
            throw new UserError(logDir + ": cannot create the directory for the ranks' logs: " + e.getMessage(), e);
        }
        console.println("jtune launcher: " + n + " process" + (n == 1 ? "" : "es") + " on this node, store 127.0.0.1:" + port
                + "; rank 0 prints here" + (n == 1 ? "" : n == 2 ? ", rank 1 writes " + logFile(1) : ", ranks 1.." + (n - 1) + " write "
                + logDir.resolve("rank<K>.log")));
        SignalHandler forward = sig -> forward(sig);
        SignalHandler oldInt = handle("INT", forward);
        SignalHandler oldTerm = handle("TERM", forward);
        Thread reaper = new Thread(this::killAll, "jtune-launcher-reaper");
        Runtime.getRuntime().addShutdownHook(reaper);   // the launcher exiting any other way takes the ranks with it
        try {
            for (int rank = 0; rank < n; rank++) start(command, rank, n, port);
            return await();
        } finally {
            if (oldInt != null) Signal.handle(new Signal("INT"), oldInt);
            if (oldTerm != null) Signal.handle(new Signal("TERM"), oldTerm);
            killAll();
            try {
                Runtime.getRuntime().removeShutdownHook(reaper);
            } catch (IllegalStateException e) {   // already shutting down
            }
        }
    }

    private void start(List<String> command, int rank, int n, int port) {
        List<String> cmd = new ArrayList<>();
        String setsid = setsid();
        if (setsid != null) cmd.add(setsid);
        cmd.addAll(command);
        ProcessBuilder pb = new ProcessBuilder(cmd);
        Map<String, String> env = pb.environment();
        // what an outer launcher set (e.g. torchrun with one process) must not leak into the ranks
        env.keySet().removeIf(k -> k.startsWith("TORCHELASTIC_") || k.startsWith("ROLE_") || k.startsWith("GROUP_"));
        env.putAll(Map.of("RANK", "" + rank, "LOCAL_RANK", "" + rank, "WORLD_SIZE", "" + n, "LOCAL_WORLD_SIZE", "" + n,
                "MASTER_ADDR", "127.0.0.1", "MASTER_PORT", "" + port, LAUNCHER_PID, "" + ProcessHandle.current().pid()));
        if (rank == 0) {
            pb.redirectOutput(ProcessBuilder.Redirect.INHERIT).redirectError(ProcessBuilder.Redirect.INHERIT);
        } else {
            Path log = logFile(rank);
            try {
                Files.writeString(log, "=== " + Instant.now() + " jtune launcher: rank " + rank + " of " + n + ": " + shown(command)
                        + "\n", StandardCharsets.UTF_8, StandardOpenOption.CREATE, StandardOpenOption.APPEND);
            } catch (IOException e) {
                throw new UserError(log + ": cannot write rank " + rank + "'s log: " + e.getMessage(), e);
            }
            pb.redirectErrorStream(true).redirectOutput(ProcessBuilder.Redirect.appendTo(log.toFile()));
        }
        Process p;
        try {
            p = pb.start();
        } catch (IOException e) {
            throw new UserError("cannot start rank " + rank + " (" + cmd.get(0) + "): " + e.getMessage(), e);
        }
        try {
            p.getOutputStream().close();   // no console input for the ranks
        } catch (IOException ignored) {
        }
        synchronized (ranks) {
            ranks.add(p);
        }
        p.onExit().thenAccept(done -> exits.add(new Exit(rank, done.exitValue())));
    }

    /** Waits for every rank; on the first failure stops the others (SIGTERM, SIGKILL after the grace period). */
    private int await() {
        int n = options.nprocPerNode();
        Exit failed = null;
        long killAt = Long.MAX_VALUE;
        for (int done = 0; done < n; ) {
            Exit e;
            try {
                long wait = killAt == Long.MAX_VALUE ? 1000 : Math.max(1, (killAt - System.nanoTime()) / 1_000_000);
                e = exits.poll(wait, TimeUnit.MILLISECONDS);
            } catch (InterruptedException ie) {
                Thread.currentThread().interrupt();
                killAll();
                return 1;
            }
            if (e == null) {
                if (System.nanoTime() >= killAt) {
                    console.println("jtune launcher: the other ranks did not stop within " + options.grace().toSeconds() + " s; killing them");
                    killAll();
                    killAt = Long.MAX_VALUE;
                }
                continue;
            }
            done++;
            if (e.code() != 0 && failed == null) {
                failed = e;
                console.println("jtune launcher: rank " + e.rank() + " exited with code " + e.code()
                        + (done < n ? "; stopping the other ranks (SIGTERM, then SIGKILL after " + options.grace().toSeconds() + " s)" : ""));
                if (e.rank() > 0) printTail(logFile(e.rank()));
                if (done < n) {
                    signalAll(15);
                    killAt = System.nanoTime() + options.grace().toNanos();
                }
            }
        }
        if (failed != null) {
            console.println("jtune launcher: exit code " + failed.code() + " (rank " + failed.rank() + ")");
            return failed.code();
        }
        if (n > 1) console.println("jtune launcher: all " + n + " ranks exited 0");
        return 0;
    }

    private void forward(Signal sig) {
        console.println("\njtune launcher: SIG" + sig.getName() + ": passing it on to the ranks");
        signalAll(sig.getNumber());
    }

    private void signalAll(int signal) {
        List<Process> live;
        synchronized (ranks) {
            live = ranks.stream().filter(Process::isAlive).toList();
        }
        for (Process p : live) {
            if (!Posix.kill(p.pid(), signal) && signal == 15) p.destroy();   // destroy() is SIGTERM on Unix
        }
    }

    private void killAll() {
        synchronized (ranks) {
            for (Process p : ranks) if (p.isAlive()) p.destroyForcibly();
        }
    }

    /** The command line for a log header, the class path (often thousands of characters) elided. */
    private static String shown(List<String> command) {
        List<String> shown = new ArrayList<>(command);
        int cp = Math.max(shown.indexOf("-cp"), shown.indexOf("-classpath"));
        if (cp >= 0 && cp + 1 < shown.size()) shown.set(cp + 1, "<class path>");
        return String.join(" ", shown);
    }

    private Path logFile(int rank) {
        return options.logDir().resolve("rank" + rank + ".log");
    }

    /** The last lines of a failed rank's log, so that its error is on the console without opening the file. */
    private void printTail(Path log) {
        try {
            List<String> lines = Files.readAllLines(log, StandardCharsets.UTF_8);
            List<String> tail = lines.subList(Math.max(0, lines.size() - 20), lines.size());
            console.println("jtune launcher: the end of " + log + ":");
            for (String l : tail) console.println("  | " + l);
        } catch (IOException | java.io.UncheckedIOException e) {
            console.println("jtune launcher: (cannot read " + log + ": " + e.getMessage() + ")");
        }
    }

    private static int checkedPort(int port) {
        if (port < 1 || port > 65535) throw new UserError("--master-port " + port + ": expected a TCP port, 1..65535");
        return port;
    }

    /** A port that is free now (as torchrun picks one: the ranks bind it a moment later). */
    private static int freePort() {
        try (ServerSocket s = new ServerSocket(0, 1, InetAddress.getByName("127.0.0.1"))) {
            return s.getLocalPort();
        } catch (IOException e) {
            throw new UserError("cannot find a free TCP port on 127.0.0.1 for the ranks' store (" + e.getMessage() + "); choose one with --master-port");
        }
    }

    private static String setsid() {
        for (String p : new String[] {"/usr/bin/setsid", "/bin/setsid"}) if (Files.isExecutable(Path.of(p))) return p;
        return null;
    }

    private static SignalHandler handle(String name, SignalHandler h) {
        try {
            return Signal.handle(new Signal(name), h);
        } catch (IllegalArgumentException e) {   // reserved by the JVM (e.g. -Xrs): that signal is not forwarded
            return null;
        }
    }

    /** kill(2) through libc: Java's Process API sends only SIGTERM and SIGKILL, and SIGINT must pass on as SIGINT. */
    private static final class Posix {
        private interface CLibrary extends Library {
            int kill(int pid, int sig);
        }

        private static CLibrary libc;

        static synchronized boolean kill(long pid, int signal) {
            try {
                if (libc == null) libc = Native.load("c", CLibrary.class);
                return libc.kill((int) pid, signal) == 0;
            } catch (Throwable t) {   // no libc through JNA: the caller falls back to Process.destroy()
                return false;
            }
        }
    }
}
