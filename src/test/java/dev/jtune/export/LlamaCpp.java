package dev.jtune.export;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import org.junit.jupiter.api.Assumptions;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

/**
 * Real llama.cpp, as a process: src/test/node/gguf/check.mjs loads GGUF files with node-llama-cpp's prebuilt
 * linux-x64 binary and parses them with @huggingface/gguf. Tests skip (locally) when {@code npm ci} has not been
 * run in that folder; under CI (CI=true, where .ci/npm-install.sh installs it) a missing install fails.
 */
final class LlamaCpp {
    static final Path DIR = Path.of("src/test/node/gguf");
    private static final ObjectMapper JSON = new ObjectMapper();

    private LlamaCpp() {}

    static void assumeInstalled() {
        boolean installed = Files.isDirectory(DIR.resolve("node_modules/node-llama-cpp"))
                && Files.isDirectory(DIR.resolve("node_modules/@node-llama-cpp/linux-x64"));
        String msg = DIR.resolve("node_modules") + " is missing: run `npm ci` in " + DIR + " (.ci/npm-install.sh does it in CI)"
                + " to check GGUF exports in real llama.cpp";
        if (!installed && "true".equals(System.getenv("CI"))) fail(msg);
        Assumptions.assumeTrue(installed, "skipped: " + msg);
    }

    /** One file's checks; set the fields a test needs. */
    static ObjectNode job(Path gguf) {
        ObjectNode j = JSON.createObjectNode();
        j.put("gguf", gguf.toAbsolutePath().toString());
        return j;
    }

    static void texts(ObjectNode job, List<String> texts) {
        ArrayNode a = job.putArray("texts");
        texts.forEach(a::add);
    }

    static void ids(ObjectNode job, String key, long[] ids) {
        ArrayNode a = job.putArray(key);
        for (long id : ids) a.add(id);
    }

    /** Runs the jobs in one node process; returns their results in order. */
    static List<JsonNode> run(Path work, List<ObjectNode> jobs) throws IOException, InterruptedException {
        ObjectNode req = JSON.createObjectNode();
        ArrayNode a = req.putArray("jobs");
        jobs.forEach(a::add);
        Path reqFile = Files.createTempFile(work, "llamacpp-", ".json");
        JSON.writeValue(reqFile.toFile(), req);
        Path outFile = work.resolve(reqFile.getFileName() + ".out");
        Path errFile = work.resolve(reqFile.getFileName() + ".err");
        Process p = new ProcessBuilder("node", "check.mjs", reqFile.toAbsolutePath().toString())
                .directory(DIR.toFile())
                .redirectOutput(outFile.toFile())
                .redirectError(errFile.toFile())
                .start();
        assertTrue(p.waitFor(240, TimeUnit.SECONDS), "node check.mjs did not finish in 240 s");
        String err = Files.readString(errFile, StandardCharsets.UTF_8);
        assertEquals(0, p.exitValue(), "node check.mjs failed:\n" + err);
        JsonNode out = JSON.readTree(outFile.toFile());
        return List.copyOf((List<JsonNode>) toList(out.get("jobs")));
    }

    private static List<JsonNode> toList(JsonNode arr) {
        java.util.ArrayList<JsonNode> l = new java.util.ArrayList<>();
        arr.forEach(l::add);
        return l;
    }
}
