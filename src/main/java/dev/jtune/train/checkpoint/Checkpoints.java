package dev.jtune.train.checkpoint;

import dev.jtune.train.optim.AdamW;
import dev.jtune.train.optim.LossScaler;
import dev.jtune.train.step.Trainable;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.jtune.io.AtomicFiles;
import dev.jtune.io.SafetensorsWriter;
import dev.jtune.io.WrittenFiles;
import dev.jtune.model.CausalLM;
import dev.jtune.model.ModelWriter;
import dev.jtune.util.UserError;
import org.bytedeco.pytorch.global.torch;
import org.bytedeco.pytorch.global.torch.ScalarType;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;

/**
 * {@code output_dir/checkpoint-STEP/}: a Hugging Face model directory (so eval, perplexity, generate and
 * transformers load it as it is) plus {@code optimizer.safetensors} and {@code trainer_state.json}.
 * Each is built in a hidden temporary directory and renamed into place, so a checkpoint directory is
 * complete or absent. At most {@code limit} are kept; the best one is never deleted.
 */
public final class Checkpoints {
    static final Pattern NAME = Pattern.compile("checkpoint-(\\d+)");
    static final String MANIFEST = "manifest.json";
    static final String RNG = RngStates.SINGLE;   // a single-process run's; a data-parallel run writes one per rank
    private static final ObjectMapper JSON = new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT);

    private final Path outputDir;
    private final Integer limit;

    public Checkpoints(Path outputDir, Integer limit) {
        this.outputDir = outputDir;
        this.limit = limit;
    }

    public Path dirFor(long step) {
        return outputDir.resolve("checkpoint-" + step);
    }

    /** Writes the checkpoint of {@code step} of a single-process run (this process's random generators); returns its directory. */
    public Path save(long step, Trainable trained, AdamW optimizer, LossScaler scaler, ObjectNode trainerState, Path baseModelDir, Path tokenizerDir,
              String chatTemplate, String resolvedExperiment, ObjectNode manifestBase) {
        return save(step, trained, optimizer.state(), optimizer.stepCount(), scaler, trainerState, baseModelDir, tokenizerDir,
                chatTemplate, resolvedExperiment, manifestBase, Map.of(RNG, RngStates.capture(manifestBase.path("device").asText())));
    }

    /**
     * Writes the checkpoint of {@code step}; returns its directory.
     *
     * @param optimizerState the optimizer's tensors (under ZeRO stage 1: every rank's shard, gathered on rank 0)
     * @param rngFiles       the random generators' files by name ({@link RngStates#gather}: one per rank in a data-parallel run)
     */
    public Path save(long step, Trainable trained, Map<String, org.bytedeco.pytorch.Tensor> optimizerState, long optimizerSteps, LossScaler scaler,
              ObjectNode trainerState, Path baseModelDir, Path tokenizerDir, String chatTemplate, String resolvedExperiment,
              ObjectNode manifestBase, Map<String, Map<String, org.bytedeco.pytorch.Tensor>> rngFiles) {
        Path dir = dirFor(step);
        Path tmp = outputDir.resolve(".checkpoint-" + step + ".tmp");
        try {
            deleteTree(tmp);
            // each writer hashes the bytes as it writes them: the manifest never reads a file back (~80 GB for a 7B model)
            WrittenFiles files = trained.save(tmp, baseModelDir, tokenizerDir, chatTemplate);
            Map<String, org.bytedeco.pytorch.Tensor> state = new java.util.LinkedHashMap<>(optimizerState);
            scaler.state().forEach((k, v) -> state.put("loss_scaler." + k, v));
            Path optimizerFile = tmp.resolve("optimizer.safetensors");
            files.add(optimizerFile, SafetensorsWriter.write(optimizerFile, state, Map.of("step", Long.toString(optimizerSteps))));
            files.add(tmp.resolve("trainer_state.json"), writeJson(tmp.resolve("trainer_state.json"), trainerState));
            // the random generators drive dropout: saved so that a resumed run draws the same masks
            for (var rng : rngFiles.entrySet()) {
                files.add(tmp.resolve(rng.getKey()), SafetensorsWriter.write(tmp.resolve(rng.getKey()), rng.getValue(), Map.of()));
            }
            Path resolved = tmp.resolve("config.resolved.yaml");
            files.add(resolved, AtomicFiles.write(resolved, resolvedExperiment.getBytes(StandardCharsets.UTF_8)));
            ObjectNode manifest = manifestBase.deepCopy();
            ObjectNode listed = manifest.putObject("files");
            files.sha256ByName().forEach(listed::put);
            requireAllHashed(tmp, files);
            writeJson(tmp.resolve(MANIFEST), manifest);
            deleteTree(dir);
            Files.move(tmp, dir, StandardCopyOption.ATOMIC_MOVE);
            AtomicFiles.fsyncDirectory(outputDir);
            return dir;
        } catch (IOException e) {
            throw new UserError(dir + ": cannot write the checkpoint: " + e.getMessage(), e);
        }
    }

    /**
     * Every file in the checkpoint was hashed by the writer that wrote it (a file written some other way would be
     * missing from the manifest, and the checkpoint would be trusted without it). Lists the directory; reads no file.
     */
    private static void requireAllHashed(Path dir, WrittenFiles files) throws IOException {
        try (Stream<Path> s = Files.list(dir)) {
            List<String> unhashed = s.filter(Files::isRegularFile).map(f -> f.getFileName().toString())
                    .filter(n -> !files.contains(n)).sorted().toList();
            if (!unhashed.isEmpty()) throw new IllegalStateException(dir + ": written without a hash: " + unhashed);
        }
    }

    /** Deletes the checkpoints beyond the limit as transformers rotates them ({@link CheckpointRotation}), never the best. */
    public void rotate(Long bestStep) {
        for (Path p : CheckpointRotation.toDelete(list(outputDir), limit, bestStep)) {
            try {
                deleteTree(p);
            } catch (IOException e) {
                throw new UserError(p + ": cannot delete an old checkpoint: " + e.getMessage(), e);
            }
        }
    }

    /** The checkpoint directories in {@code outputDir}, oldest step first. */
    public static List<Path> list(Path outputDir) {
        List<Path> out = new ArrayList<>();
        if (!Files.isDirectory(outputDir)) return out;
        try (Stream<Path> s = Files.list(outputDir)) {
            s.filter(p -> Files.isDirectory(p) && NAME.matcher(p.getFileName().toString()).matches()).forEach(out::add);
        } catch (IOException e) {
            throw new UserError(outputDir + ": cannot list checkpoints: " + e.getMessage(), e);
        }
        out.sort(Comparator.comparingLong(Checkpoints::stepOf));
        return out;
    }

    public static long stepOf(Path checkpoint) {
        Matcher m = NAME.matcher(checkpoint.getFileName().toString());
        if (!m.matches()) throw new IllegalArgumentException(checkpoint.toString());
        return Long.parseLong(m.group(1));
    }

    /**
     * A Hugging Face model directory of the model's current weights (float32), with the base model's
     * generation config and tokenizer files; the chat template used for training goes into
     * tokenizer_config.json so `generate --chat` and transformers' apply_chat_template agree.
     */
    public static WrittenFiles writeModel(Path dir, CausalLM model, Path baseModelDir, Path tokenizerDir, String chatTemplate) throws IOException {
        return ModelWriter.save(dir, model.config(), model.parameters(), ScalarType.Float, null, null)
                .addAll(ModelWriter.copyGenerationConfig(baseModelDir, dir))
                .addAll(writeTokenizer(dir, tokenizerDir, chatTemplate));
    }

    /** The tokenizer files, with the chat template used for training in tokenizer_config.json. */
    public static WrittenFiles writeTokenizer(Path dir, Path tokenizerDir, String chatTemplate) throws IOException {
        Path from = Files.isDirectory(tokenizerDir) ? tokenizerDir : tokenizerDir.getParent();
        WrittenFiles written = ModelWriter.copyTokenizer(from, dir);
        if (chatTemplate != null) {
            // read from the source, not from the copy just written
            Path tc = from.resolve("tokenizer_config.json");
            ObjectNode cfg = Files.isRegularFile(tc) ? (ObjectNode) JSON.readTree(tc.toFile()) : JSON.createObjectNode();
            if (!cfg.has("chat_template")) {
                cfg.put("chat_template", chatTemplate);
                Path out = dir.resolve("tokenizer_config.json");
                written.add(out, writeJson(out, cfg));
            }
        }
        return written;
    }

    /** Pretty JSON and a newline; returns the SHA-256 of the bytes written. */
    static String writeJson(Path file, Object value) throws IOException {
        return AtomicFiles.write(file, (JSON.writeValueAsString(value) + "\n").getBytes(StandardCharsets.UTF_8));
    }

    public static void deleteTree(Path p) throws IOException {
        if (!Files.exists(p)) return;
        try (Stream<Path> s = Files.walk(p)) {
            for (Path q : s.sorted(Comparator.reverseOrder()).toList()) Files.delete(q);
        }
    }

    /** Why a checkpoint cannot be trusted (empty when it can): a missing manifest or file, or a hash mismatch. */
    public static List<String> verify(Path dir) {
        List<String> problems = new ArrayList<>();
        Path m = dir.resolve(MANIFEST);
        if (!Files.isRegularFile(m)) {
            problems.add("no " + MANIFEST + " (incomplete, or written by an older jtune)");
            return problems;
        }
        try {
            JsonNode files = JSON.readTree(m.toFile()).path("files");
            if (!files.isObject() || files.size() == 0) problems.add(MANIFEST + " lists no files");
            for (java.util.Iterator<Map.Entry<String, JsonNode>> it = files.fields(); it.hasNext(); ) {
                Map.Entry<String, JsonNode> e = it.next();
                Path f = dir.resolve(e.getKey());
                if (!Files.isRegularFile(f)) problems.add(e.getKey() + " is missing");
                else if (!sha256(f).equals(e.getValue().asText())) problems.add(e.getKey() + " does not match its hash in " + MANIFEST + " (damaged)");
            }
        } catch (IOException e) {
            problems.add(MANIFEST + " cannot be read: " + e.getMessage());
        }
        return problems;
    }

    /** The newest checkpoint in {@code outputDir} that verifies; damaged ones are reported and skipped. */
    static Path latestGood(Path outputDir, java.io.PrintStream log) {
        List<Path> all = list(outputDir);
        for (int i = all.size() - 1; i >= 0; i--) {
            List<String> problems = verify(all.get(i));
            if (problems.isEmpty()) return all.get(i);
            log.println("resume: skipping " + all.get(i) + ": " + String.join("; ", problems));
        }
        return null;
    }

    static String sha256(Path f) throws IOException {
        return dev.jtune.data.DataFiles.sha256(f);
    }
}
