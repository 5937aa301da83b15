package dev.jtune.util;

import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/**
 * A first run on a machine that has another LibTorch on its linker path (Debian's python3-torch puts LibTorch 1.13 in
 * /lib/x86_64-linux-gnu): jtune in a child JVM with an empty JavaCPP cache, as on a machine where it never ran, makes a
 * model and trains it for 2 steps. Before the fix the JVM died with SIGSEGV while the preset's libtorch.so loaded
 * (exit 134), because the system's libtorch_cpu.so was found before the preset's was extracted. The same with that
 * directory in LD_LIBRARY_PATH, which the dynamic linker searches before the preset's own directory.
 *
 * <p>CI installs python3-torch (.ci/run), so this runs there; elsewhere, without a system LibTorch, it skips (and
 * fails under CI=true, where a skip would hide the check).
 */
class FirstRunTest {
    static Path systemTorch;

    @BeforeAll
    static void needASystemLibTorch() {
        for (String dir : List.of("/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/usr/lib64", "/usr/lib")) {
            Path p = Path.of(dir, "libtorch_cpu.so");
            if (Files.exists(p)) {
                systemTorch = p;
                break;
            }
        }
        if (systemTorch == null && "true".equals(System.getenv("CI"))) {
            fail("CI must have a system LibTorch on the linker path (apt-get install python3-torch in .ci/run)");
        }
        assumeTrue(systemTorch != null, "no system LibTorch (apt-get install python3-torch) to compete with");
    }

    @Test
    void aFreshCacheBesideASystemLibTorchInitsAndTrains(@TempDir Path tmp) throws Exception {
        Path cache = Files.createDirectories(tmp.resolve("javacpp-cache"));
        Path model = tmp.resolve("base-model");
        Child init = jtune(tmp, cache, Map.of(), "init-model", "--arch", "llama", "--preset", "tiny",
                "--tokenizer", Path.of("configs/tokenizers/gpt2").toAbsolutePath().toString(), "--out", model.toString());
        assertEquals(0, init.code, init.output);
        assertTrue(Files.exists(model.resolve("model.safetensors")), init.output);

        Path yaml = tmp.resolve("exp.yaml");
        Files.writeString(yaml, """
                model:
                  path: %s
                data:
                  train_file: %s
                  format: instruction
                  prompt_column: question
                  response_column: answer
                  validation_split: 0.1
                  max_seq_length: 64
                training:
                  output_dir: %s
                  max_steps: 2
                  per_device_train_batch_size: 2
                  logging_steps: 1
                  device: auto
                  precision: fp32
                """.formatted(model, Path.of("configs/demo/data-science-qa.csv").toAbsolutePath(), tmp.resolve("out")));
        // a second fresh cache: train is a first run too
        Path cache2 = Files.createDirectories(tmp.resolve("javacpp-cache-2"));
        Child train = jtune(tmp, cache2, Map.of(), "train", yaml.toString());
        assertEquals(0, train.code, train.output);
        assertTrue(train.output.contains("2/2") || Files.exists(tmp.resolve("out").resolve("final")), train.output);
        assertFalse(train.output.contains("SIGSEGV"), train.output);
    }

    @Test
    void theSystemLibTorchFirstInLdLibraryPathDoesNotReplaceOurs(@TempDir Path tmp) throws Exception {
        Path cache = Files.createDirectories(tmp.resolve("javacpp-cache"));
        Child init = jtune(tmp, cache, Map.of("LD_LIBRARY_PATH", systemTorch.getParent().toString()), "init-model",
                "--arch", "llama", "--preset", "tiny", "--tokenizer", Path.of("configs/tokenizers/gpt2").toAbsolutePath().toString(),
                "--out", tmp.resolve("m").toString());
        assertEquals(0, init.code, init.output);
        assertTrue(Files.exists(tmp.resolve("m").resolve("model.safetensors")), init.output);
    }

    record Child(int code, String output) {}

    static Child jtune(Path tmp, Path cache, Map<String, String> env, String... args) throws Exception {
        List<String> cmd = new ArrayList<>(List.of(Path.of(System.getProperty("java.home"), "bin", "java").toString(),
                "-Dorg.bytedeco.javacpp.cachedir=" + cache, "-cp", System.getProperty("java.class.path"), "dev.jtune.cli.Main"));
        cmd.addAll(List.of(args));
        Path log = Files.createTempFile(tmp, "child", ".log");
        ProcessBuilder pb = new ProcessBuilder(cmd).redirectErrorStream(true).redirectOutput(log.toFile()).directory(tmp.toFile());
        pb.environment().putAll(env);
        Process p = pb.start();
        if (!p.waitFor(5, TimeUnit.MINUTES)) {
            p.destroyForcibly();
            fail("jtune " + args[0] + " did not finish: " + Files.readString(log));
        }
        return new Child(p.exitValue(), Files.readString(log));
    }
}
