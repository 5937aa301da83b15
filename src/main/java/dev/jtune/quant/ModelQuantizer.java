package dev.jtune.quant;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.jtune.io.AtomicFiles;
import dev.jtune.io.DType;
import dev.jtune.io.TensorInfo;
import dev.jtune.io.WeightFiles;
import dev.jtune.model.ModelConfig;
import dev.jtune.model.ParameterSpec;
import dev.jtune.util.UserError;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.Tensor;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * {@code jtune quantize}: a 16- or 32-bit Hugging Face model directory to the 4-bit directory
 * transformers + bitsandbytes write ({@code model.save_pretrained} of a model loaded with
 * {@code BitsAndBytesConfig(load_in_4bit=True, …)}): every Linear weight of the decoder quantized with
 * {@link FourBitCodec} and stored as {@link QuantizedTensor#stateDict}, everything else (embeddings, norms,
 * biases, the modules in the skip list, by default the output head) copied as stored, config.json with
 * the {@code quantization_config}, tokenizer and generation files copied.
 *
 * <p>Streaming: the input is memory-mapped and quantized tensor by tensor; the quantized tensors stay in
 * memory until written, unquantized ones are views of the input mapping. Host peak: the 4-bit model plus
 * the pages of the tensor being quantized.
 */
@SuppressWarnings("try")
public final class ModelQuantizer {
    private static final ObjectMapper JSON = new ObjectMapper();
    /** transformers' default max_shard_size ("5GB"). */
    public static final long MAX_SHARD_BYTES = 5_000_000_000L;

    private ModelQuantizer() {}

    /** What was written. */
    public record Result(List<String> quantized, List<String> kept, long parameters, long inputBytes, long outputBytes) {
        /** Bytes per parameter of the written weights. */
        public double bytesPerParameter() {
            return (double) outputBytes / parameters;
        }
    }

    /**
     * @param skipModules modules to keep unquantized (transformers' {@code llm_int8_skip_modules}); empty =
     *                    the default, the output head
     * @throws UserError if {@code in} is not a supported model, is already quantized, {@code out} exists and
     *                   is not empty, or a weight holds NaN/infinity
     */
    public static Result quantize(Path in, Path out, QuantType type, boolean doubleQuant, List<String> skipModules,
                                  long maxShardBytes) {
        ModelConfig mc = ModelConfig.read(in);
        ObjectNode rawConfig = readJson(in.resolve("config.json"));
        if (rawConfig.has(QuantizationConfig.KEY) && !rawConfig.get(QuantizationConfig.KEY).isNull()) {
            throw new UserError(in.resolve("config.json") + ": the model is already quantized (it has a " + QuantizationConfig.KEY + ")");
        }
        boolean conv1d = mc.family() == ModelConfig.Family.GPT2;   // Conv1D (in, out): quantized as W^T, as bitsandbytes does
        checkOutput(out);
        Map<String, ParameterSpec.Entry> spec = ParameterSpec.of(mc);
        List<String> skip = skipModules.isEmpty() ? QuantizationConfig.DEFAULT_SKIP : skipModules;
        List<String> quantized = new ArrayList<>();
        List<String> kept = new ArrayList<>();
        long parameters = 0;
        String computeDtype = "float32";
        try (WeightFiles w = WeightFiles.open(in)) {
            Map<String, Tensor> outTensors = new LinkedHashMap<>();
            for (String name : w.names()) {
                TensorInfo info = w.info(name);
                parameters += info.numel();
                String canon = ParameterSpec.canonicalName(mc, name);   // prefix-less GPT-2 files
                ParameterSpec.Entry e = canon == null ? null : spec.get(canon);
                boolean linear = e != null && e.kind() == ParameterSpec.Kind.LINEAR && name.endsWith(".weight");
                boolean floating = info.dtype() == DType.F32 || info.dtype() == DType.F16 || info.dtype() == DType.BF16;
                String module = name.endsWith(".weight") ? name.substring(0, name.length() - ".weight".length()) : name;
                if (linear && floating && !QuantizationConfig.skipped(module, skip)) {
                    try (PointerScope s = new PointerScope()) {
                        Tensor src = conv1d ? w.tensor(name).t().contiguous() : w.tensor(name);
                        QuantizedTensor q = FourBitCodec.quantize(src, type, doubleQuant,
                                w.fileOf(name) + ": tensor '" + name + "'");
                        computeDtype = q.state().dtype();
                        for (Map.Entry<String, Tensor> p : q.stateDict(name).entrySet()) {
                            p.getValue().retainReference(); // outlive this scope until written
                            outTensors.put(p.getKey(), p.getValue());
                        }
                    }
                    quantized.add(name);
                } else {
                    outTensors.put(name, w.tensor(name));
                    if (e != null && e.kind() == ParameterSpec.Kind.LINEAR) kept.add(name);
                }
            }
            Map<String, String> metadata = Map.of("format", "pt");
            WeightFiles.writeSharded(out, outTensors, maxShardBytes, metadata);
            QuantizationConfig qc = new QuantizationConfig(type, doubleQuant, computeDtype,
                    skipModules.isEmpty() ? QuantizationConfig.DEFAULT_SKIP : skipModules);
            ObjectNode config = rawConfig.deepCopy();
            config.set(QuantizationConfig.KEY, qc.toJson(JSON));
            writeJson(out.resolve("config.json"), config);
            copyOtherFiles(in, out);
            long outBytes;
            try (WeightFiles written = WeightFiles.open(out)) {
                outBytes = written.totalBytes();
            }
            return new Result(quantized, kept, parameters, w.totalBytes(), outBytes);
        }
    }

    private static void checkOutput(Path out) {
        if (Files.isRegularFile(out)) throw new UserError(out + ": is a file; --out must be a new or empty directory");
        if (Files.isDirectory(out)) {
            try (DirectoryStream<Path> ds = Files.newDirectoryStream(out)) {
                if (ds.iterator().hasNext()) {
                    throw new UserError(out + ": directory is not empty; choose a new directory for the quantized model");
                }
            } catch (IOException e) {
                throw new UserError(out + ": cannot read: " + e, e);
            }
        }
    }

    /** Tokenizer, generation config, chat template and other non-weight files, as they are. */
    private static void copyOtherFiles(Path in, Path out) {
        try (DirectoryStream<Path> ds = Files.newDirectoryStream(in)) {
            for (Path p : ds) {
                String n = p.getFileName().toString();
                boolean weights = n.endsWith(".safetensors") || n.equals(WeightFiles.INDEX) || n.startsWith("pytorch_model")
                        || n.endsWith(".bin") || n.endsWith(".pt") || n.endsWith(".pth");
                if (!Files.isRegularFile(p) || weights || n.equals("config.json") || n.startsWith(".")) continue;
                Files.copy(p, out.resolve(n), StandardCopyOption.REPLACE_EXISTING);
            }
        } catch (IOException e) {
            throw new UserError(in + ": cannot copy the tokenizer and other files to " + out + ": " + e, e);
        }
    }

    private static ObjectNode readJson(Path file) {
        try {
            JsonNode n = JSON.readTree(file.toFile());
            if (n == null || !n.isObject()) throw new UserError(file + ": expected a JSON object");
            return (ObjectNode) n;
        } catch (IOException e) {
            throw new UserError(file + ": not valid JSON: " + e.getMessage().lines().findFirst().orElse(""));
        }
    }

    private static void writeJson(Path file, ObjectNode node) {
        try {
            byte[] bytes = (JSON.writer().with(SerializationFeature.INDENT_OUTPUT).writeValueAsString(node) + "\n")
                    .getBytes(StandardCharsets.UTF_8);
            AtomicFiles.write(file, ch -> {
                ByteBuffer b = ByteBuffer.wrap(bytes);
                while (b.hasRemaining()) ch.write(b);
            });
        } catch (IOException e) {
            throw new UserError(file + ": cannot write: " + e, e);
        }
    }
}
