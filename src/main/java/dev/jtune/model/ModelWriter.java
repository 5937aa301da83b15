package dev.jtune.model;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.jtune.io.AtomicFiles;
import dev.jtune.io.WeightFiles;
import dev.jtune.io.WrittenFiles;
import dev.jtune.util.Tensors;
import dev.jtune.util.UserError;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch.ScalarType;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/** Writes a model as a Hugging Face directory that transformers' from_pretrained reads. */
public final class ModelWriter {
    private ModelWriter() {}

    /** Files besides the weights that make a directory usable on its own. */
    public static final List<String> TOKENIZER_FILES = List.of(
            "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "chat_template.jinja",
            "vocab.json", "merges.txt", "tokenizer.model");

    /** transformers' default shard size is 5 GB; we keep that so sharding looks the same. */
    public static final long DEFAULT_SHARD_BYTES = 5_000_000_000L;

    private static final ObjectMapper JSON = new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT);

    /**
     * @param params       parameters by Hugging Face name (any device); written in {@code dtype}
     * @param tokenizerDir where to copy tokenizer files from, or null
     * @return the files written, each with the SHA-256 computed as it was written
     */
    public static WrittenFiles save(Path dir, ModelConfig config, Map<String, Tensor> params, ScalarType dtype,
                                    Path tokenizerDir, ObjectNode generationConfig) {
        try {
            Files.createDirectories(dir);
            WrittenFiles written = new WrittenFiles();
            written.add(dir.resolve("config.json"), writeConfig(dir, config, Tensors.hfName(dtype)));
            if (generationConfig != null) {
                Path gen = dir.resolve("generation_config.json");
                written.add(gen, AtomicFiles.write(gen, JSON.writeValueAsBytes(generationConfig)));
            }
            Map<String, Tensor> out = new LinkedHashMap<>();
            for (Map.Entry<String, Tensor> e : params.entrySet()) {
                Tensor t = e.getValue().detach();
                out.put(e.getKey(), t.scalar_type().intern() == dtype ? t : t.to(dtype));
            }
            written.addAll(WeightFiles.writeSharded(dir, out, DEFAULT_SHARD_BYTES, Map.of("format", "pt")));
            if (tokenizerDir != null) written.addAll(copyTokenizer(tokenizerDir, dir));
            return written;
        } catch (IOException e) {
            throw new UserError(dir + ": cannot write the model: " + e.getMessage(), e);
        }
    }

    /** config.json: the model's own config.json, unchanged but for torch_dtype. Returns its SHA-256. */
    public static String writeConfig(Path dir, ModelConfig config, String torchDtype) throws IOException {
        ObjectNode cfg = config.raw().deepCopy();
        cfg.put("torch_dtype", torchDtype);
        return AtomicFiles.write(dir.resolve("config.json"), JSON.writeValueAsBytes(cfg));
    }

    /** The base model's generation_config.json (EOS ids, sampling defaults), when it has one. */
    public static WrittenFiles copyGenerationConfig(Path baseModelDir, Path to) throws IOException {
        WrittenFiles written = new WrittenFiles();
        Path gen = baseModelDir.resolve("generation_config.json");
        Path dst = to.resolve("generation_config.json");
        if (Files.isRegularFile(gen)) written.add(dst, AtomicFiles.copy(gen, dst));
        return written;
    }

    /** The tokenizer files of {@code from} that exist, copied into {@code to}. */
    public static WrittenFiles copyTokenizer(Path from, Path to) throws IOException {
        WrittenFiles written = new WrittenFiles();
        if (from.toAbsolutePath().normalize().equals(to.toAbsolutePath().normalize())) return written;
        for (String f : TOKENIZER_FILES) {
            Path src = from.resolve(f);
            if (Files.isRegularFile(src)) written.add(to.resolve(f), AtomicFiles.copy(src, to.resolve(f)));
        }
        return written;
    }
}
