package dev.jtune.train.checkpoint;

import dev.jtune.train.optim.AdamW;
import dev.jtune.train.optim.LossScaler;
import dev.jtune.train.step.Trainable;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.jtune.model.ModelConfig;
import dev.jtune.model.ModelInit;
import dev.jtune.model.ModelWriter;
import dev.jtune.tokenizer.HfTokenizer;
import org.bytedeco.pytorch.Device;
import org.bytedeco.pytorch.global.torch.ScalarType;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.util.HexFormat;
import java.util.Iterator;
import java.util.Map;
import java.util.TreeMap;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/**
 * A checkpoint's manifest.json is built from the hashes its writers computed while writing (a 7B full
 * fine-tune writes ~80 GB per checkpoint; reading it all back to hash it doubled the I/O).
 */
class CheckpointsTest {
    static final ObjectMapper JSON = new ObjectMapper();
    static final Path PROC_IO = Path.of("/proc/self/io");

    @TempDir
    Path tmp;

    /** Bytes this process has read through read(2) and friends so far (Linux's /proc/self/io rchar). */
    static long bytesReadByThisProcess() throws IOException {
        for (String line : Files.readAllLines(PROC_IO)) {
            if (line.startsWith("rchar:")) return Long.parseLong(line.substring(6).trim());
        }
        throw new IllegalStateException("no rchar in " + PROC_IO);
    }

    static String independentSha256(Path f) throws Exception {
        return "sha256:" + HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(Files.readAllBytes(f)));
    }

    static long sizeOfFiles(Path dir) throws IOException {
        try (Stream<Path> s = Files.list(dir)) {
            long n = 0;
            for (Path p : s.toList()) if (Files.isRegularFile(p)) n += Files.size(p);
            return n;
        }
    }

    @Test
    void manifestHashesAreTheFilesHashesAndNothingWrittenIsReadBack() throws Exception {
        assumeTrue(Files.isReadable(PROC_IO), "counts reads with Linux's /proc/self/io");
        Path tokDir = Path.of("src/test/resources/tokenizers/torchtune-tiny");   // as TrainerTest.TOKENIZER
        Path base = tmp.resolve("base");
        try (HfTokenizer tok = HfTokenizer.load(tokDir)) {   // "small": ~13 MB of fp32 weights, so a read-back would show
            ModelConfig c = ModelConfig.parse(ModelInit.presetConfig("llama", "small", tok.vocabSize(), null, null), base.resolve("config.json"));
            ModelWriter.save(base, c, ModelInit.randomParameters(c, 5, ScalarType.Float), ScalarType.Float, null, null);
        }
        Files.writeString(base.resolve("generation_config.json"), "{\"eos_token_id\": 2}\n");
        Device cpu = new Device("cpu");
        Path out = tmp.resolve("run");
        Checkpoints checkpoints = new Checkpoints(out, null);
        ObjectNode manifestBase = JSON.createObjectNode().put("jtune_version", "test").put("device", "cpu");
        try (Trainable trained = new Trainable.Full(ModelConfig.read(base), cpu, dev.jtune.kernels.Ops.AUTO)) {
            AdamW optimizer = new AdamW(trained.parameters(), trained.decayed(), 0.01, 0.9, 0.999, 1e-8);
            LossScaler scaler = new LossScaler(cpu, false);
            ObjectNode state = JSON.createObjectNode().put("global_step", 1);
            // the first save loads the classes it needs (class files are read too); the second is measured
            checkpoints.save(1, trained, optimizer, scaler, state, base, tokDir, "{{ messages }}", "model: x\n", manifestBase);
            long before = bytesReadByThisProcess();
            Path dir = checkpoints.save(2, trained, optimizer, scaler, state, base, tokDir, "{{ messages }}", "model: x\n", manifestBase);
            long read = bytesReadByThisProcess() - before;

            // what a save must read: the source files it copies (tokenizer files, generation_config.json)
            long sources = sizeOfFiles(tokDir) + Files.size(base.resolve("generation_config.json"));
            long written = sizeOfFiles(dir);
            long slack = 1 << 20;
            assertTrue(written > 4 * (sources + slack), "the test can fail: reading the checkpoint back would read " + written + " bytes");
            assertTrue(read < sources + slack, "save read " + read + " bytes; copying its sources needs " + sources
                    + ", the files it wrote are " + written + " bytes: written files must not be read back to hash them");

            // the manifest lists every file of the checkpoint (but itself), each with its true SHA-256
            JsonNode files = JSON.readTree(dir.resolve(Checkpoints.MANIFEST).toFile()).get("files");
            Map<String, String> listed = new TreeMap<>();
            for (Iterator<Map.Entry<String, JsonNode>> it = files.fields(); it.hasNext(); ) {
                Map.Entry<String, JsonNode> e = it.next();
                listed.put(e.getKey(), e.getValue().asText());
            }
            Map<String, String> actual = new TreeMap<>();
            try (Stream<Path> s = Files.list(dir)) {
                for (Path f : s.toList()) {
                    if (!f.getFileName().toString().equals(Checkpoints.MANIFEST)) actual.put(f.getFileName().toString(), independentSha256(f));
                }
            }
            assertEquals(actual, listed);
            assertTrue(listed.keySet().containsAll(java.util.List.of("model.safetensors", "config.json", "generation_config.json",
                    "tokenizer.json", "tokenizer_config.json", "optimizer.safetensors", "trainer_state.json", Checkpoints.RNG,
                    "config.resolved.yaml")), listed.keySet().toString());
            assertTrue(Checkpoints.verify(dir).isEmpty(), Checkpoints.verify(dir).toString());
            // tokenizer_config.json was written twice (copied, then given the chat template): the manifest has the last
            assertTrue(Files.readString(dir.resolve("tokenizer_config.json")).contains("{{ messages }}"));
        }
    }
}
