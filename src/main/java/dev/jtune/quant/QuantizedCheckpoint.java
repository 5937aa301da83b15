package dev.jtune.quant;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.jtune.io.DType;
import dev.jtune.io.TensorInfo;
import dev.jtune.io.WeightFiles;
import dev.jtune.model.ModelConfig;
import dev.jtune.model.ParameterSpec;
import dev.jtune.util.UserError;
import org.bytedeco.pytorch.Tensor;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * A model directory saved by transformers + bitsandbytes in 4 bits (or by {@code jtune quantize}):
 * config.json with a {@code quantization_config}, and per quantized Linear the tensors of
 * {@link QuantizedTensor#stateDict}. {@link #open} validates every quantized weight (its quant state
 * against the tensors' dtypes and sizes, the quant type against the tensor's name) and, for the
 * architectures jtune knows, every parameter's (dequantized) shape against config.json.
 *
 * <p>Dequantization uses the maps stored in the file ({@code quant_map}, {@code nested_quant_map}).
 */
public final class QuantizedCheckpoint implements AutoCloseable {
    private static final ObjectMapper JSON = new ObjectMapper();
    private static final String STATE_MARK = ".quant_state.";
    private static final List<String> AUX = List.of(".absmax", ".quant_map", ".nested_absmax", ".nested_quant_map");

    private final Path dir;
    private final QuantizationConfig config;
    private final WeightFiles weights;
    private final Map<String, QuantizedTensor> quantized;
    private final List<String> plain;
    private final List<String> keptLinear = new ArrayList<>();
    private String modelType = "";

    private QuantizedCheckpoint(Path dir, QuantizationConfig config, WeightFiles weights,
                                Map<String, QuantizedTensor> quantized, List<String> plain) {
        this.dir = dir;
        this.config = config;
        this.weights = weights;
        this.quantized = quantized;
        this.plain = plain;
    }

    /** Whether {@code dir}'s config.json has a {@code quantization_config} (cheap: reads only config.json). */
    public static boolean isQuantized(Path dir) {
        JsonNode root = readConfig(dir, false);
        return root != null && root.has(QuantizationConfig.KEY) && !root.get(QuantizationConfig.KEY).isNull();
    }

    /** The {@code quantization_config} of {@code dir}'s config.json, checked (reads only config.json). */
    public static QuantizationConfig quantizationConfig(Path dir) {
        JsonNode root = readConfig(dir, true);
        String where = dir.resolve("config.json").toString();
        if (!root.isObject() || !root.has(QuantizationConfig.KEY)) {
            throw new UserError(where + ": no " + QuantizationConfig.KEY + " (not a quantized checkpoint)");
        }
        return QuantizationConfig.parse(root.get(QuantizationConfig.KEY), where);
    }

    private static JsonNode readConfig(Path dir, boolean required) {
        Path file = dir.resolve("config.json");
        if (!Files.isRegularFile(file)) {
            if (required) throw new UserError(dir + ": not a Hugging Face model directory (no config.json)");
            return null;
        }
        try {
            return JSON.readTree(file.toFile());
        } catch (IOException e) {
            if (required) throw new UserError(file + ": not valid JSON: " + e.getMessage().lines().findFirst().orElse(""));
            return null;
        }
    }

    /**
     * Opens and validates a 4-bit checkpoint. Nothing is dequantized yet.
     *
     * @throws UserError naming the file and tensor: an unknown quant type, a quant state that disagrees
     *                   with the tensors (shape, dtype, sizes of absmax and maps), a missing or stray part,
     *                   or a parameter whose (dequantized) shape disagrees with config.json
     */
    public static QuantizedCheckpoint open(Path dir) {
        JsonNode root = readConfig(dir, true);
        String cfgWhere = dir.resolve("config.json").toString();
        if (!root.isObject() || !root.has(QuantizationConfig.KEY)) {
            throw new UserError(cfgWhere + ": no " + QuantizationConfig.KEY + " (not a quantized checkpoint)");
        }
        QuantizationConfig qc = QuantizationConfig.parse(root.get(QuantizationConfig.KEY), cfgWhere);
        WeightFiles w = WeightFiles.open(dir);
        try {
            Map<String, QuantizedTensor> quantized = new LinkedHashMap<>();
            Set<String> parts = new LinkedHashSet<>();
            for (String name : w.names()) {
                int at = name.indexOf(STATE_MARK);
                if (at < 0) continue;
                String weight = name.substring(0, at);
                String typeName = name.substring(at + STATE_MARK.length());
                String where = w.fileOf(name) + ": tensor '" + name + "'";
                if (!typeName.startsWith("bitsandbytes__")) {
                    throw new UserError(where + ": unknown quant state kind '" + typeName + "'; expected bitsandbytes__nf4 or bitsandbytes__fp4");
                }
                QuantType keyType = QuantType.parse(typeName.substring("bitsandbytes__".length()), where);
                QuantizedTensor q = read(w, weight, name, keyType);
                quantized.put(weight, q);
                parts.add(name);
                parts.add(weight);
                for (String aux : AUX) if (w.contains(weight + aux)) parts.add(weight + aux);
            }
            List<String> plain = new ArrayList<>();
            for (String name : w.names()) {
                if (parts.contains(name)) continue;
                for (String aux : AUX) {
                    if (name.endsWith(aux)) {
                        throw new UserError(w.fileOf(name) + ": tensor '" + name + "' belongs to a quantized weight '"
                                + name.substring(0, name.length() - aux.length()) + "' that has no quant state ("
                                + "expected '" + name.substring(0, name.length() - aux.length()) + ".quant_state.bitsandbytes__nf4' or __fp4)");
                    }
                }
                plain.add(name);
            }
            if (quantized.isEmpty()) {
                throw new UserError(dir + ": config.json has a " + QuantizationConfig.KEY + " but no tensor is quantized "
                        + "(expected '<module>.weight.quant_state.bitsandbytes__nf4' entries)");
            }
            QuantizedCheckpoint c = new QuantizedCheckpoint(dir, qc, w, Collections.unmodifiableMap(quantized), List.copyOf(plain));
            c.checkAgainstArchitecture((ObjectNode) root, Path.of(cfgWhere));
            return c;
        } catch (RuntimeException e) {
            w.close();
            throw e;
        }
    }

    /** Reads and checks one quantized weight's tensors against its quant state. */
    private static QuantizedTensor read(WeightFiles w, String weight, String stateName, QuantType keyType) {
        String where = w.fileOf(stateName) + ": tensor '" + stateName + "'";
        TensorInfo si = w.info(stateName);
        if (si.dtype() != DType.U8 || si.shape().length != 1) {
            throw new UserError(where + ": a quant state must be a 1-D uint8 tensor (JSON bytes), found " + si.dtype()
                    + " " + Arrays.toString(si.shape()));
        }
        QuantState st = QuantState.parse(dev.jtune.util.Tensors.toBytes(w.tensor(stateName)), where);
        if (st.type() != keyType) {
            throw new UserError(where + ": the quant state says quant_type '" + st.type().bnbName() + "' but the tensor name says '"
                    + keyType.bnbName() + "'");
        }
        Tensor packed = part(w, weight, DType.U8, st.packedBytes(), "packed 4-bit codes for shape " + Arrays.toString(st.shape()), stateName);
        Tensor absmax = st.nested()
                ? part(w, weight + ".absmax", DType.U8, st.blocks(), "8-bit absmax codes (one per block of " + st.blocksize() + ")", stateName)
                : part(w, weight + ".absmax", DType.F32, st.blocks(), "absmax values (one per block of " + st.blocksize() + ")", stateName);
        Tensor map = part(w, weight + ".quant_map", DType.F32, 16, "4-bit code values", stateName);
        Tensor nestedAbsmax = null;
        Tensor nestedMap = null;
        if (st.nested()) {
            nestedAbsmax = part(w, weight + ".nested_absmax", DType.F32, st.nestedBlocks(),
                    "nested absmax values (one per " + st.nestedBlocksize() + " absmax)", stateName);
            nestedMap = part(w, weight + ".nested_quant_map", DType.F32, 256, "8-bit code values", stateName);
        } else {
            for (String aux : List.of(".nested_absmax", ".nested_quant_map")) {
                if (w.contains(weight + aux)) {
                    throw new UserError(w.fileOf(weight + aux) + ": tensor '" + weight + aux + "': present, but the quant state '"
                            + stateName + "' has no nested_* keys (no double quantization)");
                }
            }
        }
        return new QuantizedTensor(st, packed, absmax, map, nestedAbsmax, nestedMap);
    }

    private static Tensor part(WeightFiles w, String name, DType dtype, long numel, String what, String stateName) {
        if (!w.contains(name)) {
            throw new UserError(w.dir() + ": tensor '" + name + "' is missing (" + what + ", required by '" + stateName + "')");
        }
        TensorInfo info = w.info(name);
        if (info.dtype() != dtype || info.numel() != numel) {
            throw new UserError(w.fileOf(name) + ": tensor '" + name + "': expected " + numel + " " + dtype + " values (" + what
                    + ", from the quant state '" + stateName + "'), found " + info.dtype() + " " + Arrays.toString(info.shape()));
        }
        return w.tensor(name);
    }

    /** For the architectures jtune implements: every parameter present, with config.json's shape once dequantized. */
    private void checkAgainstArchitecture(ObjectNode root, Path cfg) {
        String type = root.path("model_type").asText("");
        modelType = type;
        if (!ModelConfig.SUPPORTED_TYPES.contains(type)) return;
        ModelConfig mc = ModelConfig.parse(root, cfg);
        List<String> problems = new ArrayList<>();
        boolean conv1d = mc.family() == ModelConfig.Family.GPT2;
        for (ParameterSpec.Entry e : ParameterSpec.of(mc).values()) {
            long[] found = shapeOf(e.name());
            if (conv1d && found != null && found.length == 2 && quantized.containsKey(e.name())) {
                found = new long[] {found[1], found[0]};   // Conv1D (in, out) is quantized as W^T (out, in), as bitsandbytes does
            }
            if (e.kind() == ParameterSpec.Kind.LINEAR && found != null && !quantized.containsKey(e.name())) keptLinear.add(e.name());
            if (found == null) {
                problems.add(e.name() + ": missing (expected " + Arrays.toString(e.shape()) + ")");
            } else if (!Arrays.equals(found, e.shape())) {
                problems.add(e.name() + ": expected " + Arrays.toString(e.shape()) + ", found " + Arrays.toString(found)
                        + (quantized.containsKey(e.name()) ? " (from its quant state)" : ""));
            }
        }
        if (!problems.isEmpty()) {
            throw new UserError(dir + ": the quantized weights do not match config.json:\n  " + String.join("\n  ", problems));
        }
    }

    /** The (dequantized) shape of parameter {@code name}, or null if absent. */
    private long[] shapeOf(String name) {
        QuantizedTensor q = quantized.get(name);
        if (q != null) return q.state().shape();
        return weights.contains(name) ? weights.info(name).shape() : null;
    }

    public Path dir() {
        return dir;
    }

    public QuantizationConfig config() {
        return config;
    }

    /** The quantized weights by name (e.g. {@code model.layers.0.mlp.up_proj.weight}), in file order. */
    public Map<String, QuantizedTensor> quantized() {
        return quantized;
    }

    /** Tensors stored as they are (embeddings, norms, the head, biases), in file order. */
    public List<String> plain() {
        return plain;
    }

    /** config.json's model_type. */
    public String modelType() {
        return modelType;
    }

    /** Linear weights of the architecture stored unquantized (the skipped modules, e.g. the output head). */
    public List<String> keptLinear() {
        return List.copyOf(keptLinear);
    }

    /** Bytes the quantized weights occupy (codes, absmax, maps and quant states). */
    public long quantizedBytes() {
        long b = 0;
        for (QuantizedTensor q : quantized.values()) b += q.storageBytes();
        return b;
    }

    /** A stored tensor as a zero-copy view (lifetime: until {@link #close}). */
    public Tensor tensor(String name) {
        return weights.tensor(name);
    }

    /** Dequantizes one weight to its quant state's dtype, with the file's maps. */
    public Tensor dequantize(String name) {
        QuantizedTensor q = quantized.get(name);
        if (q == null) throw new UserError(dir + ": '" + name + "' is not a quantized weight");
        return FourBitCodec.dequantize(q);
    }

    /** Parameters the model has: the plain tensors and the quantized weights (counted at their original size). */
    public long parameterCount() {
        long n = 0;
        for (String p : plain) n += weights.info(p).numel();
        for (QuantizedTensor q : quantized.values()) n += q.state().numel();
        return n;
    }

    /** Bytes of every tensor in the files. */
    public long storageBytes() {
        return weights.totalBytes();
    }

    @Override
    public void close() {
        weights.close();
    }
}
