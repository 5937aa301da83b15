package dev.jtune.train.step;

import dev.jtune.train.checkpoint.Checkpoints;
import dev.jtune.config.Precision;
import dev.jtune.kernels.Ops;
import dev.jtune.model.CausalLM;
import dev.jtune.model.ModelConfig;
import dev.jtune.model.ModelLoader;
import dev.jtune.model.ParameterSpec;
import dev.jtune.peft.Lora;
import dev.jtune.peft.LoraAdapter;
import dev.jtune.peft.LoraSpec;
import dev.jtune.peft.PeftAdapter;
import dev.jtune.util.Tensors;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.Device;
import org.bytedeco.pytorch.NoGradGuard;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch.ScalarType;

import java.io.IOException;
import java.nio.file.Path;
import java.util.Map;
import java.util.function.Predicate;

/**
 * What a run trains and how it is saved: every weight (full fine-tuning, fp32 master weights, saved as a
 * Hugging Face model directory) or LoRA adapters on a frozen base (saved as a PEFT adapter directory).
 * The training loop sees only the named trainable tensors.
 */
public abstract class Trainable implements AutoCloseable {
    public final CausalLM model;

    Trainable(CausalLM model) {
        this.model = model;
    }

    /**
     * Full fine-tuning, or LoRA adapters on a frozen base stored in model.dtype (default: bf16 under bf16 precision,
     * fp16 under fp16, else fp32), as the experiment says.
     */
    public static Trainable forExperiment(dev.jtune.config.Experiment exp, ModelConfig config, Device device, Precision precision,
                                   Ops kernels) {
        return regularised(build(exp, config, device, precision, kernels), exp, config);
    }

    private static Trainable build(dev.jtune.config.Experiment exp, ModelConfig config, Device device, Precision precision,
                                   Ops kernels) {
        dev.jtune.config.LoraSection lora = exp.lora();
        if (!lora.enabled()) return new Full(config, device, kernels);
        ScalarType baseDtype = exp.model().dtype() != null ? Tensors.parseDtype(exp.model().dtype(), "model.dtype")
                : frozenBaseDtype(precision);
        LoraSpec spec = new LoraSpec(lora.r(), lora.alpha(), lora.dropout(), lora.targetModules(), lora.useRslora(), lora.initWeights());
        dev.jtune.quant.QuantizationConfig q = exp.model().fourBit() ? exp.model().quantization().toConfig() : null;
        return new Adapters(config, device, baseDtype, spec, lora.adapterPath(), exp.training().seed(), kernels, q);
    }

    /**
     * The regularisers that live in the model, on in training mode only: its own dropout (config.json's, with the
     * experiment's model.attention_dropout / attn_pdrop / resid_pdrop / embd_pdrop over it) and NEFTune noise.
     */
    private static Trainable regularised(Trainable t, dev.jtune.config.Experiment exp, ModelConfig config) {
        t.model.setDropout(dev.jtune.model.ModelDropout.of(config, exp.model().dropoutOverrides()));
        Double alpha = exp.training().neftuneNoiseAlpha();
        t.model.setNeftuneNoiseAlpha(alpha == null ? 0.0 : alpha);
        return t;
    }

    /**
     * Random weights of {@code config}'s shape (transformers' initialisation; see {@link dev.jtune.model.ModelInit}), no
     * files: full fine-tuning with fp32 master weights ({@code lora} null), or LoRA adapters on a frozen base in the
     * autocast's dtype, 4-bit with {@code quantization} (QLoRA: drawn and quantized tensor by tensor). On CUDA the weights
     * are drawn on the device with the same distributions (the CPU generator would take minutes and tens of GB for 8B).
     */
    static Trainable random(ModelConfig config, Device device, Precision precision, LoraSpec lora, long seed, Ops kernels,
                            dev.jtune.quant.QuantizationConfig quantization) {
        boolean full = lora == null;
        if (full && quantization != null) throw new IllegalArgumentException("a 4-bit base needs LoRA");
        ScalarType dtype = full ? ScalarType.Float : frozenBaseDtype(precision);
        CausalLM model;
        if (quantization != null) {
            model = dev.jtune.quant.QuantizedModelLoader.random(config, seed, dtype, device, kernels, quantization);
        } else {
            Map<String, Tensor> params;
            try (PointerScope scope = new PointerScope()) {
                params = dev.jtune.model.ModelInit.randomParameters(config, seed, dtype, device);
                for (Tensor p : params.values()) {
                    if (full) p.requires_grad_(true);   // retained once by randomParameters: the model releases it at close
                }
            }
            model = ModelLoader.create(config, params, dtype, device, null, kernels);
        }
        if (full) return new Full(model, config);
        Map<String, LoraAdapter> adapters;
        try (PointerScope scope = new PointerScope()) {
            adapters = Lora.create(config, lora, seed, device, "--lora-targets");
        }
        return new Adapters(model, lora, adapters, quantization);
    }

    /** The dtype a frozen LoRA base is kept in when model.dtype does not say: that of the autocast, else fp32. */
    static ScalarType frozenBaseDtype(Precision precision) {
        return precision == Precision.BF16 ? ScalarType.BFloat16 : precision == Precision.FP16 ? ScalarType.Half : ScalarType.Float;
    }

    /**
     * transformers' weight-decay rule for full fine-tuning ({@code Trainer.get_decay_parameter_names}): every
     * parameter decays except biases and the weights of LayerNorm/RMSNorm layers. Embeddings (and a tied or untied
     * output head) DO decay. transformers decides by module type and name patterns; jtune by the parameter kinds of
     * {@link ParameterSpec}, which give the same sets for every supported architecture (TrainerReferenceTest compares
     * the GPT-2 set with the one transformers' rule computes).
     */
    public static Predicate<String> fullDecay(ModelConfig config) {
        Map<String, ParameterSpec.Entry> spec = ParameterSpec.of(config);
        return n -> {
            ParameterSpec.Kind k = spec.get(n).kind();
            return k != ParameterSpec.Kind.BIAS && k != ParameterSpec.Kind.NORM_WEIGHT;
        };
    }

    /** Tensors the optimizer updates, by the name they are saved under. */
    public abstract Map<String, Tensor> parameters();

    /** Which of them get weight decay. */
    public abstract Predicate<String> decayed();

    /** Writes the trained weights (a model directory or an adapter directory) into {@code dir}; returns the files with their hashes. */
    public abstract dev.jtune.io.WrittenFiles save(Path dir, Path baseModelDir, Path tokenizerDir, String chatTemplate) throws IOException;

    /** Restores the trained weights from a directory {@link #save} wrote. */
    public abstract void restore(Path dir);

    /** What trains, for the console: "full fine-tuning", or "LoRA r=8 on 14 modules, base frozen in bfloat16". */
    public abstract String what();

    /**
     * The run's numerics for the console and the report, true for every precision with full fine-tuning or LoRA:
     * the autocast mode, then where the trained weights live ("fp32 master weights" under autocast with full
     * fine-tuning; "fp32 adapters on a frozen bfloat16 base" with LoRA).
     */
    public String precisionFacts(Precision precision) {
        return precisionFacts(precision, this instanceof Adapters ? model.dtype() : null);
    }

    /** @param frozenBase the LoRA base's dtype, or null for full fine-tuning */
    public static String precisionFacts(Precision precision, ScalarType frozenBase) {
        String mode = switch (precision) {
            case FP32 -> "fp32";
            case BF16 -> "bf16 autocast";
            case FP16 -> "fp16 autocast with dynamic loss scaling";
            case AUTO -> throw new IllegalArgumentException("resolve the precision first");
        };
        if (frozenBase != null) return mode + ", fp32 adapters on a frozen " + Tensors.hfName(frozenBase) + " base";
        return precision == Precision.FP32 ? mode : mode + ", fp32 master weights";
    }

    /** A line for the console: what trains, and the memory it takes. */
    public String describe() {
        long total = 0, weightBytes = 0;
        for (Tensor t : model.parameters().values()) {
            total += t.numel();
            weightBytes += t.numel() * Tensors.elementSize(t.scalar_type());
        }
        long trainable = 0;
        for (Tensor t : parameters().values()) trainable += t.numel();
        if (parameters() != model.parameters()) {
            total += trainable;
            weightBytes += trainable * 4;
        }
        return String.format(java.util.Locale.ROOT,
                "trainable %,d of %,d parameters (%.2f%%); memory: weights %s, gradients %s, optimizer state %s",
                trainable, total, 100.0 * trainable / total, mib(weightBytes), mib(trainable * 4), mib(trainable * 8));
    }

    private static String mib(long bytes) {
        return String.format(java.util.Locale.ROOT, "%.1f MiB", bytes / 1048576.0);
    }

    @Override
    public void close() {
        model.close();
    }

    /** Every weight trains: fp32 leaf copies of the base weights. */
    public static final class Full extends Trainable {
        private final Predicate<String> decayed;

        public Full(ModelConfig config, Device device, Ops kernels) {
            this(copyForTraining(config, device, kernels), config);
        }

        /** Trains {@code model}'s own weights (leaves that require grad). */
        Full(CausalLM model, ModelConfig config) {
            super(model);
            this.decayed = fullDecay(config);
        }

        /**
         * fp32 leaves of their own, made from the mapped weight files with one copy per tensor straight to the device
         * ({@link ModelLoader#loadCopy}): at the start the process holds one copy of the model, not a loaded model
         * plus its clone.
         */
        private static CausalLM copyForTraining(ModelConfig config, Device device, Ops kernels) {
            CausalLM model = ModelLoader.loadCopy(config.source().getParent(), ScalarType.Float, device, kernels);
            try (PointerScope scope = new PointerScope()) {
                for (Tensor p : model.parameters().values()) p.requires_grad_(true);
            }
            return model;
        }

        @Override
        public Map<String, Tensor> parameters() {
            return model.parameters();
        }

        @Override
        public String what() {
            return "full fine-tuning";
        }

        /** {@link #fullDecay}: no decay on biases and norm weights; everything else, embeddings included, decays. */
        @Override
        public Predicate<String> decayed() {
            return decayed;
        }

        @Override
        public dev.jtune.io.WrittenFiles save(Path dir, Path baseModelDir, Path tokenizerDir, String chatTemplate) throws IOException {
            return Checkpoints.writeModel(dir, model, baseModelDir, tokenizerDir, chatTemplate);
        }

        /**
         * Copies the saved weights into the trained tensors one at a time, from views of the mapped files (loaded in
         * their stored dtype on the CPU: zero-copy when the checkpoint has one dtype, as jtune writes them), so no
         * second copy of the model is made.
         */
        @Override
        public void restore(Path dir) {
            try (CausalLM saved = ModelLoader.load(dir, null, new Device("cpu"), model.kernels());
                 NoGradGuard ng = new NoGradGuard(); PointerScope scope = new PointerScope()) {
                for (Map.Entry<String, Tensor> e : model.parameters().entrySet()) e.getValue().copy_(saved.parameters().get(e.getKey()));
            }
        }
    }

    /** LoRA: the base is frozen (no gradients, no optimizer state) in {@code baseDtype}; adapters train in fp32. */
    public static final class Adapters extends Trainable {
        private final LoraSpec spec;
        private final Map<String, LoraAdapter> adapters;
        private final Map<String, Tensor> tensors;
        private final String baseModel;
        private final dev.jtune.quant.QuantizationConfig quantization;

        /** @param quantization a 4-bit base (QLoRA), or null */
        public Adapters(ModelConfig config, Device device, ScalarType baseDtype, LoraSpec spec, Path startFrom, long seed, Ops kernels,
                 dev.jtune.quant.QuantizationConfig quantization) {
            super(dev.jtune.peft.AdapterLoader.load(config.source().getParent(), null, baseDtype, device, kernels, quantization));
            if (startFrom != null) {
                PeftAdapter.Loaded loaded = PeftAdapter.load(startFrom, config, device, true);
                this.spec = loaded.spec();
                this.adapters = loaded.adapters();
            } else {
                this.spec = spec;
                this.adapters = Lora.create(config, spec, seed, device, "lora.target_modules");
            }
            this.tensors = Lora.tensors(adapters);
            this.baseModel = config.source().getParent().toString();
            this.quantization = quantization;
            model.setAdapters(adapters);
        }

        /** New adapters on a base made in memory (random weights: saved adapters name no base directory). */
        Adapters(CausalLM base, LoraSpec spec, Map<String, LoraAdapter> adapters, dev.jtune.quant.QuantizationConfig quantization) {
            super(base);
            this.spec = spec;
            this.adapters = adapters;
            this.tensors = Lora.tensors(adapters);
            this.baseModel = "";
            this.quantization = quantization;
            model.setAdapters(adapters);
        }

        LoraSpec spec() {
            return spec;
        }

        /** The adapters by module name. */
        Map<String, LoraAdapter> adapters() {
            return adapters;
        }

        @Override
        public String what() {
            String base = model.frozenLinears().isEmpty() ? Tensors.hfName(model.dtype())
                    : "4 bits (" + model.frozenLinears().size() + " quantized linear layers; the rest " + Tensors.hfName(model.dtype()) + ")";
            return "LoRA r=" + spec.r() + " on " + adapters.size() + " modules, base frozen in " + base;
        }

        @Override
        public Map<String, Tensor> parameters() {
            return tensors;
        }

        /** Adapter weights are matrices: all decay, as PEFT under transformers' Trainer does. */
        @Override
        public Predicate<String> decayed() {
            return n -> true;
        }

        @Override
        public dev.jtune.io.WrittenFiles save(Path dir, Path baseModelDir, Path tokenizerDir, String chatTemplate) throws IOException {
            return PeftAdapter.save(dir, spec, adapters, model.config(), baseModel, quantization)
                    .addAll(Checkpoints.writeTokenizer(dir, tokenizerDir, chatTemplate));
        }

        @Override
        public void restore(Path dir) {
            PeftAdapter.Loaded saved = PeftAdapter.load(dir, model.config(), model.device(), false);
            try (NoGradGuard ng = new NoGradGuard(); PointerScope scope = new PointerScope()) {
                adapters.forEach((m, a) -> {
                    a.a().copy_(saved.adapters().get(m).a());
                    a.b().copy_(saved.adapters().get(m).b());
                });
            } finally {
                saved.adapters().values().forEach(LoraAdapter::close);
            }
        }
    }
}
