package dev.jtune.api;

import dev.jtune.metrics.MetricsLog;
import dev.jtune.metrics.TrainPoint;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import javax.tools.JavaCompiler;
import javax.tools.ToolProvider;
import java.io.ByteArrayOutputStream;
import java.io.File;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The README's example program, as a user of the library meets it: taken from README.md, compiled with javax.tools
 * against the packaged {@code target/jtune.jar} and {@code target/lib/*} only, and run in its own JVM; its losses are
 * those of {@code java -jar target/jtune.jar train} on the same experiment (to 1e-6 relative; they are equal).
 *
 * <p>An integration test (failsafe, after {@code package}): it needs the jar, which surefire's phase does not have yet.
 */
class ApiExampleIT {
    static final Path JAR = Path.of("target/jtune.jar").toAbsolutePath(), LIB = Path.of("target/lib").toAbsolutePath();

    @TempDir
    Path tmp;

    @Test
    void readmeExampleCompilesAgainstTheJarAndTrainsAsTheCliDoes() throws Exception {
        assertTrue(Files.isRegularFile(JAR) && Files.isDirectory(LIB), "run after `mvn package`: needs " + JAR + " and " + LIB);
        Path base = tmp.resolve("base");
        run(List.of(java(), "-jar", JAR.toString(), "init-model", "--arch", "llama", "--preset", "tiny", "--tokenizer",
                "configs/tokenizers/gpt2", "--out", base.toString(), "--seed", "1"));
        // the demo experiment on that base: no generated answers (slow, not what is tested), a loss logged every step
        String demo = Files.readString(Path.of("configs/demo.yaml"));
        Path yaml = tmp.resolve("exp.yaml");
        Files.writeString(yaml, demo.replace("path: runs/demo/base-model", "path: " + base)
                .replace("predict_with_generate: true", "predict_with_generate: false")
                .replace("logging_steps: 10", "logging_steps: 1"));

        Path cliOut = tmp.resolve("cli");
        run(List.of(java(), "-jar", JAR.toString(), "train", yaml.toString(), "--set", "training.max_steps=4",
                "--set", "training.output_dir=" + cliOut));

        Path src = tmp.resolve("src/FineTune.java"), classes = tmp.resolve("classes");
        Files.createDirectories(src.getParent());
        Files.createDirectories(classes);
        Files.writeString(src, readmeExample());
        List<String> jars = new ArrayList<>(List.of(JAR.toString()));
        try (Stream<Path> s = Files.list(LIB)) {
            s.filter(p -> p.toString().endsWith(".jar")).sorted().forEach(p -> jars.add(p.toString()));
        }
        JavaCompiler javac = ToolProvider.getSystemJavaCompiler();
        ByteArrayOutputStream diagnostics = new ByteArrayOutputStream();
        int compiled = javac.run(null, diagnostics, diagnostics, "--release", "17", "-classpath", String.join(File.pathSeparator, jars),
                "-d", classes.toString(), src.toString());
        assertEquals(0, compiled, "the README's example compiles against the jar: " + diagnostics.toString(StandardCharsets.UTF_8));

        Path apiOut = tmp.resolve("api");
        String out = run(List.of(java(), "-cp", classes + File.pathSeparator + JAR + File.pathSeparator + LIB + File.separator + "*",
                "FineTune", yaml.toString(), apiOut.toString()));
        assertTrue(out.contains("logged steps [1, 2, 3, 4]; losses "), out);
        assertTrue(out.contains("; answer: "), out);

        Map<Long, Double> cli = losses(cliOut), api = losses(apiOut);
        assertEquals(List.of(1L, 2L, 3L, 4L), new ArrayList<>(cli.keySet()));
        assertEquals(cli.keySet(), api.keySet());
        for (long step : cli.keySet()) {
            assertEquals(cli.get(step), api.get(step), 1e-6 * Math.abs(cli.get(step)), "loss at step " + step);
        }
    }

    /** The Java block between the api-example markers of README.md. */
    static String readmeExample() throws IOException {
        String readme = Files.readString(Path.of("README.md"));
        int start = readme.indexOf("<!-- api-example:start -->"), end = readme.indexOf("<!-- api-example:end -->");
        assertTrue(start >= 0 && end > start, "README.md has the api-example markers");
        String block = readme.substring(start, end);
        int code = block.indexOf("```java\n") + "```java\n".length();
        return block.substring(code, block.lastIndexOf("```"));
    }

    static String java() {
        return Path.of(System.getProperty("java.home"), "bin", "java").toString();
    }

    /** Runs a command in the repository root; returns its output, failing with it when the exit code is not 0. */
    static String run(List<String> cmd) throws IOException, InterruptedException {
        Process p = new ProcessBuilder(cmd).redirectErrorStream(true).start();
        String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        assertTrue(p.waitFor(5, TimeUnit.MINUTES), "finished: " + cmd);
        assertEquals(0, p.exitValue(), String.join(" ", cmd) + "\n" + out);
        return out;
    }

    static Map<Long, Double> losses(Path runDir) {
        Map<Long, Double> out = new TreeMap<>();
        for (TrainPoint p : MetricsLog.read(runDir.resolve("metrics.jsonl")).train()) out.put(p.step(), p.loss());
        return out;
    }
}
