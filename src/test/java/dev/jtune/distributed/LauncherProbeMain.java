package dev.jtune.distributed;

import dev.jtune.util.UserError;

import java.nio.file.Path;
import java.time.Duration;
import java.util.List;

/** {@code LauncherProbeMain N GRACE_MS LOG_DIR PROBE_ARGS…}: the built-in launcher, running {@link LaunchProbe} ranks. */
public final class LauncherProbeMain {
    public static void main(String[] args) {
        List<String> probeArgs = List.of(args).subList(3, args.length);
        try {
            int code = Launcher.run(new Launcher.Options(Integer.parseInt(args[0]), null, Path.of(args[2]), Duration.ofMillis(Long.parseLong(args[1]))),
                    Launcher.javaCommand(LaunchProbe.class, probeArgs), System.err);
            System.exit(code);
        } catch (UserError e) {
            System.err.println("jtune: error: " + e.getMessage());
            System.exit(2);
        }
    }
}
