package dev.jtune.distributed;

import sun.misc.Signal;

import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.IOException;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.List;
import java.util.Properties;
import java.util.TreeSet;

/**
 * A rank that reports what it sees, for the launcher tests: {@code LaunchProbe DIR [behaviour…]} reads
 * {@link LaunchEnv#fromEnvironment}, prints one line to stdout, writes {@code DIR/rankR-attemptA.properties}
 * (the LaunchEnv, its pid, parent pid and session), and, on the store's host, meets every other rank over TCP at
 * MASTER_ADDR:MASTER_PORT (proof that the address and port work and that all ranks share them; on torchelastic's
 * agent store it connects to the agent's server instead and reports "agent"). Behaviours:
 * <ul>
 *   <li>{@code exit=R:C} rank R exits with code C after reporting;</li>
 *   <li>{@code fail-first-attempt=R:C} rank R exits with C on attempt 0 only (torchrun's restarts);</li>
 *   <li>{@code wait} wait for SIGTERM/SIGINT, append its name to {@code DIR/rankR.signal}, exit 0;</li>
 *   <li>{@code ignore-term} with wait: write the file but keep running (the launcher must SIGKILL it);</li>
 *   <li>{@code kill9=R} rank R sends itself SIGKILL.</li>
 * </ul>
 */
public final class LaunchProbe {
    public static void main(String[] args) throws Exception {
        Launcher.exitWithLauncher();   // as jtune's Main does
        Path dir = Path.of(args[0]);
        List<String> behaviours = List.of(args).subList(1, args.length);
        LaunchEnv env = LaunchEnv.fromEnvironment(System.getenv()).orElse(LaunchEnv.single());
        int rank = env.rank();
        boolean ignoreTerm = behaviours.contains("ignore-term");
        if (behaviours.contains("wait")) {
            for (String name : new String[] {"TERM", "INT"}) {
                Signal.handle(new Signal(name), sig -> {
                    try {
                        Files.writeString(dir.resolve("rank" + rank + ".signal"), "SIG" + sig.getName() + "\n", StandardOpenOption.CREATE,
                                StandardOpenOption.APPEND);   // one line per signal: the tests see a double delivery
                    } catch (IOException e) {
                        throw new RuntimeException(e);
                    }
                    System.out.println("probe rank " + rank + ": got SIG" + sig.getName());
                    if (!ignoreTerm) System.exit(0);
                });
            }
        }
        System.out.println("probe rank " + rank + ": " + env.describe());
        Properties p = new Properties();
        p.setProperty("rank", "" + env.rank());
        p.setProperty("localRank", "" + env.localRank());
        p.setProperty("worldSize", "" + env.worldSize());
        p.setProperty("localWorldSize", "" + env.localWorldSize());
        p.setProperty("masterAddr", env.masterAddr());
        p.setProperty("masterPort", "" + env.masterPort());
        p.setProperty("agentStore", "" + env.agentStore());
        p.setProperty("restartCount", "" + env.restartCount());
        p.setProperty("source", env.source());
        p.setProperty("hostsStore", "" + env.hostsStore());
        p.setProperty("storePrefix", env.storePrefix());
        p.setProperty("pid", "" + ProcessHandle.current().pid());
        p.setProperty("ppid", "" + ProcessHandle.current().parent().map(ProcessHandle::pid).orElse(-1L));
        p.setProperty("session", session("self"));
        if (env.distributed()) p.setProperty("peers", meet(env));
        Path report = dir.resolve("rank" + rank + "-attempt" + env.restartCount() + ".properties");
        Path tmp = dir.resolve(report.getFileName() + ".tmp");
        try (var w = Files.newBufferedWriter(tmp)) {
            p.store(w, null);
        }
        Files.move(tmp, report);   // a complete report or none: the tests poll for it
        for (String b : behaviours) {
            String[] kv = b.split("=", 2);
            if (kv.length < 2) continue;
            String[] rc = kv[1].split(":");
            if (Integer.parseInt(rc[0]) != rank) continue;
            if (kv[0].equals("kill9")) {
                new ProcessBuilder("kill", "-9", "" + ProcessHandle.current().pid()).start().waitFor();
                Thread.sleep(10_000);
            }
            int code = Integer.parseInt(rc[1]);
            if (kv[0].equals("exit") || (kv[0].equals("fail-first-attempt") && env.restartCount() == 0)) {
                System.out.println("probe rank " + rank + ": exiting with " + code);
                System.exit(code);
            }
        }
        if (behaviours.contains("wait")) Thread.sleep(120_000);   // the signal handler ends it (or the launcher's SIGKILL)
    }

    /** Field 6 of /proc/PID/stat, the session id; "" where there is no /proc. */
    static String session(String pid) {
        try {
            String stat = Files.readString(Path.of("/proc", pid, "stat"));
            String[] f = stat.substring(stat.lastIndexOf(')') + 2).split(" ");
            return f[3];
        } catch (IOException e) {
            return "";
        }
    }

    /** The store's host accepts one connection from every other rank, which sends its rank; returns the ranks it met. */
    private static String meet(LaunchEnv env) throws IOException, InterruptedException {
        if (env.hostsStore()) {
            TreeSet<Integer> met = new TreeSet<>();
            try (ServerSocket server = new ServerSocket(env.masterPort(), 50, InetAddress.getByName(env.masterAddr()))) {
                server.setSoTimeout(30_000);
                while (met.size() < env.worldSize() - 1) {
                    try (Socket s = server.accept()) {
                        met.add(new DataInputStream(s.getInputStream()).readInt());
                    }
                }
            }
            List<String> out = new ArrayList<>();
            for (int r : met) out.add("" + r);
            return String.join(",", out);
        }
        if (env.agentStore()) {   // the agent's TCPStore listens there; the ranks are its clients
            try (Socket s = new Socket(env.masterAddr(), env.masterPort())) {
                return "agent";
            }
        }
        long deadline = System.currentTimeMillis() + 30_000;
        while (true) {
            try (Socket s = new Socket(env.masterAddr(), env.masterPort())) {
                new DataOutputStream(s.getOutputStream()).writeInt(env.rank());
                return "";
            } catch (IOException e) {
                if (System.currentTimeMillis() > deadline) throw e;
                Thread.sleep(50);
            }
        }
    }
}
