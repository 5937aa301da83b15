package dev.jtune.quant;

import dev.jtune.io.DType;
import dev.jtune.io.WeightFiles;
import dev.jtune.kernels.Ops;
import dev.jtune.model.CausalLM;
import dev.jtune.model.ModelConfig;
import dev.jtune.model.ModelLoader;
import dev.jtune.model.ParameterSpec;
import dev.jtune.util.Tensors;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.Device;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch.ScalarType;

import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * Builds a model over a 4-bit base (QLoRA), as transformers does with {@code BitsAndBytesConfig(load_in_4bit=True)}:
 * every linear layer of the decoder becomes a {@link QuantizedProjection} (its weight 4-bit codes, dequantized inside
 * each matrix product, no dequantized copy kept); the embeddings, norms and the output head stay in {@code dtype}, as
 * do the modules in {@code llm_int8_skip_modules}.
 *
 * <p>Two sources:
 * <ul>
 *   <li>a 16/32-bit checkpoint, quantized on load tensor by tensor ({@link FourBitCodec}) on the target device:
 *       the files are memory-mapped, so the host holds the 4-bit model plus the pages of the tensor being
 *       quantized (clean file pages the OS may drop), not a 16-bit copy of the model;</li>
 *   <li>a pre-quantized directory ({@link QuantizedCheckpoint}: config.json with a {@code quantization_config}),
 *       dequantized with the maps stored in it; its own settings apply.</li>
 * </ul>
 * GPT-2's Conv1D weights, stored (in, out), are quantized as W^T (out, in), as bitsandbytes replaces Conv1D by
 * {@code Linear4bit}.
 */
@SuppressWarnings("try")
public final class QuantizedModelLoader {
    private QuantizedModelLoader() {}

    /**
     * @param dtype     the dtype of the unquantized parameters (embeddings, norms, head, biases), or null for the
     *                  stored one
     * @param requested the experiment's settings; ignored for a pre-quantized directory (the file's apply)
     */
    public static CausalLM load(Path dir, ScalarType dtype, Device device, Ops kernels, QuantizationConfig requested) {
        return QuantizedCheckpoint.isQuantized(dir) ? loadQuantized(dir, dtype, device, kernels)
                : quantizeOnLoad(dir, dtype, device, kernels, requested);
    }

    /** Whether parameter {@code name} (canonical) is a weight a 4-bit base quantizes: a linear weight, not the head, not skipped. */
    public static boolean quantizes(ModelConfig c, String name, List<String> skip) {
        ParameterSpec.Entry e = ParameterSpec.of(c).get(name);
        if (e == null || e.kind() != ParameterSpec.Kind.LINEAR || !name.endsWith(".weight") || name.startsWith("lm_head")) return false;
        return !QuantizationConfig.skipped(module(name), skip);
    }

    static String module(String param) {
        return param.substring(0, param.lastIndexOf('.'));
    }

    private static CausalLM quantizeOnLoad(Path dir, ScalarType dtype, Device device, Ops kernels, QuantizationConfig q) {
        ModelConfig config = ModelConfig.read(dir);
        ModelLoader.Report report = ModelLoader.inspect(dir);   // every tensor checked against config.json
        ScalarType target = dtype != null ? dtype : stored(report.storedDtype());
        ScalarType compute = Tensors.parseDtype(q.computeDtype(), "model.quantization.bnb_4bit_compute_dtype");
        boolean conv1d = config.family() == ModelConfig.Family.GPT2;
        List<String> skip = q.effectiveSkipModules();
        WeightFiles w = WeightFiles.open(dir);
        try {
            Map<String, Tensor> params = new LinkedHashMap<>();
            Map<String, QuantizedTensor> weights = new LinkedHashMap<>();
            Map<String, ParameterSpec.Entry> spec = ParameterSpec.of(config);
            for (String file : w.names()) {
                String name = ParameterSpec.canonicalName(config, file);
                if (name == null || !spec.containsKey(name)) continue;
                if (quantizes(config, name, skip)) {
                    try (PointerScope s = new PointerScope()) {
                        Tensor t = w.tensor(file);
                        if (conv1d) t = t.t();                                    // (in, out) -> (out, in)
                        if (!device.is_cpu()) t = t.to(device, t.scalar_type());
                        QuantizedTensor qt = FourBitCodec.quantize(t.contiguous(), q.type(), q.doubleQuant(),
                                w.fileOf(file) + ": tensor '" + file + "'");
                        weights.put(module(name), retained(qt));
                    }
                } else {
                    params.put(name, param(w.tensor(file), target, device));
                }
            }
            return build(config, params, weights, target, device, w, kernels, compute);
        } catch (RuntimeException e) {
            w.close();
            throw e;
        }
    }

    private static CausalLM loadQuantized(Path dir, ScalarType dtype, Device device, Ops kernels) {
        QuantizedCheckpoint ck = QuantizedCheckpoint.open(dir);
        try {
            ModelConfig config = ModelConfig.read(dir);
            Map<String, ParameterSpec.Entry> spec = ParameterSpec.of(config);
            ScalarType first = ck.quantized().values().iterator().next().state().scalarType();
            ScalarType target = dtype != null ? dtype : first;
            ScalarType compute = Tensors.parseDtype(ck.config().computeDtype(), dir.resolve("config.json") + ": bnb_4bit_compute_dtype");
            Map<String, Tensor> params = new LinkedHashMap<>();
            for (String file : ck.plain()) {
                String name = ParameterSpec.canonicalName(config, file);
                if (name != null && spec.containsKey(name)) params.put(name, param(ck.tensor(file), target, device));
            }
            Map<String, QuantizedTensor> weights = new LinkedHashMap<>();
            ck.quantized().forEach((file, qt) -> {
                String name = ParameterSpec.canonicalName(config, file);
                weights.put(module(name), retained(device.is_cpu() ? qt : toDevice(qt, device)));
            });
            return build(config, params, weights, target, device, ck, kernels, compute);
        } catch (RuntimeException e) {
            ck.close();
            throw e;
        }
    }

    /**
     * A 4-bit base of {@code config}'s shape with random weights (benchmarks: no files), drawn and quantized one tensor
     * at a time on {@code device}, so that the peak is the 4-bit model plus one weight, not the 16-bit model (an 8B
     * shape in bf16 is 16 GB). Weights as ModelInit draws them: N(0, initializer_range), norms 1, biases 0; the
     * quantized weights' state dtype is {@code dtype}.
     */
    public static CausalLM random(ModelConfig config, long seed, ScalarType dtype, Device device, Ops kernels, QuantizationConfig q) {
        double std = config.raw().path("initializer_range").asDouble(0.02);
        org.bytedeco.pytorch.GeneratorOptional gen = device.is_cpu()
                ? new org.bytedeco.pytorch.GeneratorOptional(org.bytedeco.pytorch.global.torch.make_generator_cpu(seed))
                : new org.bytedeco.pytorch.GeneratorOptional();
        if (device.is_cuda()) org.bytedeco.pytorch.global.torch.cuda_manual_seed(seed);
        boolean conv1d = config.family() == ModelConfig.Family.GPT2;
        List<String> skip = q.effectiveSkipModules();
        Map<String, Tensor> params = new LinkedHashMap<>();
        Map<String, QuantizedTensor> weights = new LinkedHashMap<>();
        for (ParameterSpec.Entry e : ParameterSpec.of(config).values()) {
            try (PointerScope s = new PointerScope()) {
                Tensor t = switch (e.kind()) {
                    case NORM_WEIGHT -> org.bytedeco.pytorch.global.torch.ones(e.shape(), Tensors.options(dtype, device));
                    case BIAS -> org.bytedeco.pytorch.global.torch.zeros(e.shape(), Tensors.options(dtype, device));
                    default -> org.bytedeco.pytorch.global.torch.randn(e.shape(), gen, Tensors.options(dtype, device))
                            .mul(new org.bytedeco.pytorch.Scalar(std));
                };
                if (quantizes(config, e.name(), skip)) {
                    if (conv1d) t = t.t().contiguous();
                    weights.put(module(e.name()), retained(FourBitCodec.quantize(t, q.type(), q.doubleQuant(), e.name())));
                } else {
                    t.retainReference();
                    params.put(e.name(), t);
                }
            }
        }
        ScalarType compute = Tensors.parseDtype(q.computeDtype(), "bnb_4bit_compute_dtype");
        return build(config, params, weights, dtype, device, null, kernels, compute);
    }

    /** Bytes the base holds: the quantized weights' codes, absmax and maps, and every other parameter. */
    public static long baseBytes(CausalLM m) {
        long b = 0;
        for (Tensor t : m.parameters().values()) b += t.numel() * Tensors.elementSize(t.scalar_type());
        for (dev.jtune.model.FrozenLinear f : m.frozenLinears().values()) {
            if (f instanceof QuantizedProjection p) {
                b += p.weight().storageBytes() - p.weight().state().toJsonBytes().length;
                if (p.bias() != null) b += p.bias().numel() * Tensors.elementSize(p.bias().scalar_type());
            }
        }
        return b;
    }

    /** The model over the unquantized parameters, each quantized module's weight (and bias) in a {@link QuantizedProjection}. */
    private static CausalLM build(ModelConfig config, Map<String, Tensor> params, Map<String, QuantizedTensor> weights,
                                  ScalarType dtype, Device device, AutoCloseable source, Ops kernels, ScalarType compute) {
        Map<String, QuantizedProjection> frozen = new LinkedHashMap<>();
        Set<String> biases = new LinkedHashSet<>();
        weights.forEach((module, qt) -> {
            Tensor bias = params.get(module + ".bias");
            if (bias != null) biases.add(module + ".bias");
            frozen.put(module, new QuantizedProjection(qt, bias, compute, kernels));
        });
        params.keySet().removeAll(biases);   // held by their projection
        CausalLM m = ModelLoader.create(config, params, dtype, device, source, kernels);
        m.setFrozenLinears(frozen);
        return m;
    }

    private static Tensor param(Tensor t, ScalarType target, Device device) {
        if (!device.is_cpu() || t.scalar_type().intern() != target) t = t.to(device, target);
        t.retainReference();   // parameters outlive any PointerScope of the caller
        return t;
    }

    private static QuantizedTensor toDevice(QuantizedTensor q, Device d) {
        return new QuantizedTensor(q.state(), q.packed().to(d, ScalarType.Byte), q.absmax().to(d, q.absmax().scalar_type()),
                q.quantMap().to(d, ScalarType.Float), q.nestedAbsmax() == null ? null : q.nestedAbsmax().to(d, ScalarType.Float),
                q.nestedQuantMap() == null ? null : q.nestedQuantMap().to(d, ScalarType.Float));
    }

    /** Keeps a quantized weight's tensors beyond the caller's PointerScope (they live as long as the model). */
    private static QuantizedTensor retained(QuantizedTensor q) {
        for (Tensor t : new Tensor[] {q.packed(), q.absmax(), q.quantMap(), q.nestedAbsmax(), q.nestedQuantMap()}) {
            if (t != null) t.retainReference();
        }
        return q;
    }

    private static ScalarType stored(String storedDtype) {
        if (storedDtype == null || storedDtype.contains("mixed")) return ScalarType.Float;
        DType d = DType.valueOf(storedDtype);
        return d == DType.F64 ? ScalarType.Float : d.toScalarType();
    }
}
