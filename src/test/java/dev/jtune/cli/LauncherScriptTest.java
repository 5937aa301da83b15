package dev.jtune.cli;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.FileTime;
import java.nio.file.attribute.PosixFilePermissions;
import java.time.Instant;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The ./jtune launcher script, run by bash in a copy of its checkout layout, with `mvn` and `java` on the PATH
 * replaced by scripts that record their arguments: it rebuilds when sources, kernels/ or native/ changed, and a jar
 * built with -Pgpu is rebuilt with -Pgpu (before, any source change rebuilt without it and dropped CUDA in silence).
 */
class LauncherScriptTest {
    static final Instant BUILT = Instant.parse("2026-01-01T00:00:00Z");

    Path checkout(Path tmp, boolean gpu) throws Exception {
        Path root = tmp.resolve("checkout");
        Files.createDirectories(root.resolve("target/lib"));
        Files.createDirectories(root.resolve("src/main/java"));
        Files.createDirectories(root.resolve("kernels"));
        Files.createDirectories(root.resolve("native"));
        Files.copy(Path.of("jtune"), root.resolve("jtune"));
        for (String f : new String[] {"pom.xml", "src/main/java/A.java", "kernels/rmsnorm.cu", "native/api.cpp"}) {
            Files.writeString(root.resolve(f), "x");
            Files.setLastModifiedTime(root.resolve(f), FileTime.from(BUILT.minusSeconds(60)));
        }
        for (String d : new String[] {"src/main/java", "src/main", "kernels", "native"}) {
            Files.setLastModifiedTime(root.resolve(d), FileTime.from(BUILT.minusSeconds(60)));
        }
        Files.writeString(root.resolve("target/jtune.jar"), "jar");
        Files.setLastModifiedTime(root.resolve("target/jtune.jar"), FileTime.from(BUILT));
        String natives = gpu ? "pytorch-2.10.0-1.5.13-linux-x86_64-gpu.jar" : "pytorch-2.10.0-1.5.13-linux-x86_64.jar";
        Files.writeString(root.resolve("target/lib").resolve(natives), "natives");
        Path bin = Files.createDirectories(tmp.resolve("bin"));
        stub(bin.resolve("mvn"), "echo \"mvn $*\" >> \"" + tmp.resolve("calls") + "\"");
        stub(bin.resolve("java"), "echo \"java $*\" >> \"" + tmp.resolve("calls") + "\"");
        return root;
    }

    static void stub(Path p, String body) throws Exception {
        Files.writeString(p, "#!/bin/sh\n" + body + "\n");
        Files.setPosixFilePermissions(p, PosixFilePermissions.fromString("rwxr-xr-x"));
    }

    String run(Path tmp, Path root) throws Exception {
        ProcessBuilder pb = new ProcessBuilder("bash", root.resolve("jtune").toString(), "env").redirectErrorStream(true);
        pb.environment().put("PATH", tmp.resolve("bin") + ":/usr/bin:/bin");
        Process p = pb.start();
        String out = new String(p.getInputStream().readAllBytes());
        assertTrue(p.waitFor(30, TimeUnit.SECONDS));
        assertEquals(0, p.exitValue(), out);
        Path calls = tmp.resolve("calls");
        String c = Files.exists(calls) ? Files.readString(calls) : "";
        Files.deleteIfExists(calls);
        return c;
    }

    @Test
    void anUpToDateJarRunsWithoutABuild(@TempDir Path tmp) throws Exception {
        String calls = run(tmp, checkout(tmp, false));
        assertFalse(calls.contains("mvn"), calls);
        assertTrue(calls.contains("java -jar") && calls.contains("env"), calls);
    }

    @Test
    void kernelAndNativeChangesRebuild(@TempDir Path tmp) throws Exception {
        Path root = checkout(tmp, false);
        Files.setLastModifiedTime(root.resolve("kernels/rmsnorm.cu"), FileTime.from(BUILT.plusSeconds(60)));
        String calls = run(tmp, root);
        assertTrue(calls.contains("mvn -B -q -DskipTests package"), calls);
        Files.setLastModifiedTime(root.resolve("kernels/rmsnorm.cu"), FileTime.from(BUILT.minusSeconds(60)));
        Files.setLastModifiedTime(root.resolve("native/api.cpp"), FileTime.from(BUILT.plusSeconds(60)));
        assertTrue(run(tmp, root).contains("mvn "), "native/ change rebuilds");
    }

    @Test
    void aGpuJarIsRebuiltWithTheGpuProfile(@TempDir Path tmp) throws Exception {
        Path root = checkout(tmp, true);
        Files.setLastModifiedTime(root.resolve("src/main/java/A.java"), FileTime.from(BUILT.plusSeconds(60)));
        String calls = run(tmp, root);
        assertTrue(calls.contains("mvn -B -q -Pgpu -DskipTests package"), calls);
    }
}
