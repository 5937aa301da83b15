package dev.jtune.model;

import dev.jtune.io.DType;
import dev.jtune.io.TensorInfo;
import dev.jtune.io.WeightFiles;
import dev.jtune.kernels.Ops;
import dev.jtune.model.gpt2.Gpt2Model;
import dev.jtune.model.llama.LlamaModel;
import dev.jtune.util.NativeRuntime;
import dev.jtune.util.Tensors;
import dev.jtune.util.UserError;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.Device;
import org.bytedeco.pytorch.MemoryFormatOptional;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch.ScalarType;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Opens a Hugging Face model directory: reads config.json, checks every tensor of the checkpoint
 * against what the architecture expects, and builds the model over the weights.
 *
 * <p>On the CPU in the stored dtype the parameters are views of the memory-mapped safetensors files
 * (zero-copy: pages are read on first touch). Another dtype or device costs one conversion per tensor.
 */
public final class ModelLoader {
    private ModelLoader() {}

    /** Everything {@link #validate} found, for `inspect`. */
    public record Report(ModelConfig config, long parameterCount, long weightBytes, String storedDtype,
                         List<String> ignored) {}

    /** {@link #load(Path, ScalarType, Device, Ops)} under the default kernel policy, {@code auto}. */
    public static CausalLM load(Path dir, ScalarType dtype, Device device) {
        return load(dir, dtype, device, Ops.AUTO);
    }

    /**
     * @param dtype   compute dtype, or null for the dtype the weights are stored in
     * @param device  where the parameters go
     * @param kernels the kernel policy the model's ops run under (training.kernels, --kernels)
     */
    public static CausalLM load(Path dir, ScalarType dtype, Device device, Ops kernels) {
        return load(dir, dtype, device, kernels, false);
    }

    /**
     * {@link #load(Path, ScalarType, Device, Ops)} with every parameter a tensor of its own, never a view of the
     * mapped files: one copy per tensor, straight from the mapping to {@code device} in {@code dtype}, so the peak is
     * one copy of the model (plus the file pages, which the kernel may drop). The weight files are closed before it
     * returns. For full fine-tuning, which updates these tensors in place.
     */
    public static CausalLM loadCopy(Path dir, ScalarType dtype, Device device, Ops kernels) {
        return load(dir, dtype, device, kernels, true);
    }

    private static CausalLM load(Path dir, ScalarType dtype, Device device, Ops kernels, boolean copy) {
        ModelConfig config = ModelConfig.read(dir);
        WeightFiles weights = WeightFiles.open(dir);
        Map<String, Tensor> params = new LinkedHashMap<>();
        try {
            Report report = validate(config, weights);
            ScalarType target = dtype != null ? dtype : storedScalarType(report, weights);
            boolean cpu = device.is_cpu();
            for (Map.Entry<String, String> e : canonicalNames(config, weights).entrySet()) {
                // a view of the mapping, retained once for us: the parameter itself (zero-copy), or released after its copy.
                // Either way the model holds one reference per parameter, released by CausalLM.close.
                Tensor t = weights.tensor(e.getValue());
                if (copy || !cpu || t.scalar_type().intern() != target) {
                    Tensor view = t;
                    try (PointerScope scope = new PointerScope()) {
                        t = view.to(device, target, false, copy, new MemoryFormatOptional()).retainReference();
                    }
                    view.releaseReference();
                }
                params.put(e.getKey(), t);
            }
            if (copy) weights.close();
            return create(config, params, target, device, copy ? null : weights, kernels);
        } catch (RuntimeException e) {
            for (Tensor t : params.values()) t.releaseReference();
            weights.close();
            throw e;
        }
    }

    /** {@link #create(ModelConfig, Map, ScalarType, Device, AutoCloseable, Ops)} under the default kernel policy, {@code auto}. */
    public static CausalLM create(ModelConfig config, Map<String, Tensor> params, ScalarType dtype, Device device,
                                  AutoCloseable source) {
        return create(config, params, dtype, device, source, Ops.AUTO);
    }

    /** Builds the model class for the config's family over ready parameters. */
    public static CausalLM create(ModelConfig config, Map<String, Tensor> params, ScalarType dtype, Device device,
                                  AutoCloseable source, Ops kernels) {
        NativeRuntime.configureThreads();
        return config.family() == ModelConfig.Family.GPT2
                ? new Gpt2Model(config, params, dtype, device, source, kernels)
                : new LlamaModel(config, params, dtype, device, source, kernels);
    }

    /** Checks the checkpoint against config.json without loading a tensor. */
    public static Report inspect(Path dir) {
        ModelConfig config = ModelConfig.read(dir);
        try (WeightFiles weights = WeightFiles.open(dir)) {
            return validate(config, weights);
        }
    }

    static Report validate(ModelConfig config, WeightFiles weights) {
        Map<String, ParameterSpec.Entry> spec = ParameterSpec.of(config);
        Map<String, String> found = canonicalNames(config, weights);
        List<String> missing = new ArrayList<>();
        List<String> wrongShape = new ArrayList<>();
        List<String> unexpected = new ArrayList<>();
        List<String> ignored = new ArrayList<>();
        List<String> nonFloat = new ArrayList<>();
        for (String name : weights.names()) {
            String canon = ParameterSpec.canonicalName(config, name);
            if (canon == null) ignored.add(name);
            else if (!spec.containsKey(canon)) unexpected.add(name);
        }
        long count = 0, bytes = 0;
        String storedDtype = null;
        for (ParameterSpec.Entry e : spec.values()) {
            String source = found.get(e.name());
            if (source == null) {
                missing.add(e.name() + " " + Arrays.toString(e.shape()));
                continue;
            }
            TensorInfo info = weights.info(source);
            if (!Arrays.equals(info.shape(), e.shape())) {
                wrongShape.add(source + ": expected " + Arrays.toString(e.shape()) + ", found " + Arrays.toString(info.shape()));
            }
            DType dt = info.dtype();
            if (dt != DType.F32 && dt != DType.F16 && dt != DType.BF16 && dt != DType.F64) {
                nonFloat.add(source + " (" + dt + ")");
            }
            if (storedDtype == null) storedDtype = dt.name();
            else if (!storedDtype.equals(dt.name()) && !storedDtype.contains("mixed")) storedDtype = storedDtype + " (mixed)";
            count += info.numel();
            bytes += info.byteSize();
        }
        StringBuilder msg = new StringBuilder();
        appendProblems(msg, "missing tensors (expected name and shape)", missing);
        appendProblems(msg, "tensors with the wrong shape", wrongShape);
        appendProblems(msg, "tensors this " + config.modelType() + " architecture does not have", unexpected);
        appendProblems(msg, "tensors that are not floating point", nonFloat);
        if (msg.length() > 0) {
            throw new UserError(weightsWhere(config) + ": the weights do not match config.json (" + config.modelType()
                    + ", " + config.numLayers() + " layers, hidden " + config.hiddenSize() + ", vocab " + config.vocabSize() + "):" + msg);
        }
        return new Report(config, count, bytes, storedDtype, ignored);
    }

    private static String weightsWhere(ModelConfig c) {
        return c.source() == null ? "model" : c.source().getParent().toString();
    }

    private static void appendProblems(StringBuilder msg, String title, List<String> items) {
        if (items.isEmpty()) return;
        msg.append("\n  ").append(items.size()).append(' ').append(title).append(':');
        int shown = Math.min(items.size(), 12);
        for (int i = 0; i < shown; i++) msg.append("\n    ").append(items.get(i));
        if (items.size() > shown) msg.append("\n    … and ").append(items.size() - shown).append(" more");
    }

    /** Our parameter name -> the checkpoint's name for it (the two differ for prefix-less GPT-2 files). */
    private static Map<String, String> canonicalNames(ModelConfig config, WeightFiles weights) {
        Map<String, ParameterSpec.Entry> spec = ParameterSpec.of(config);
        Map<String, String> out = new LinkedHashMap<>();
        for (String name : weights.names()) {
            String canon = ParameterSpec.canonicalName(config, name);
            if (canon != null && spec.containsKey(canon)) out.put(canon, name);
        }
        // keep the architecture's order, not the file's
        Map<String, String> ordered = new LinkedHashMap<>();
        for (String k : spec.keySet()) if (out.containsKey(k)) ordered.put(k, out.get(k));
        return ordered;
    }

    private static ScalarType storedScalarType(Report report, WeightFiles weights) {
        String s = report.storedDtype();
        if (s == null || s.contains("mixed")) return ScalarType.Float;
        DType d = DType.valueOf(s);
        return d == DType.F64 ? ScalarType.Float : d.toScalarType();
    }

    /** Bytes of the parameters in the given dtype. */
    public static long bytesIn(long parameterCount, ScalarType dtype) {
        return parameterCount * Tensors.elementSize(dtype);
    }
}
