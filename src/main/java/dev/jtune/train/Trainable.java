package dev.jtune.train;

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
import org.bytedeco.pytorch.Device;
import org.bytedeco.pytorch.NoGradGuard;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch.ScalarType;

import java.io.IOException;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.function.Predicate;

/**
 * What a run trains and how it is saved: every weight (full fine-tuning, fp32 master weights, saved as a
 * Hugging Face model directory) or LoRA adapters on a frozen base (saved as a PEFT adapter directory).
 * The training loop sees only the named trainable tensors.
 */
abstract class Trainable implements AutoCloseable {
    final CausalLM model;

    Trainable(CausalLM model) {
        this.model = model;
    }

    /**
     * Full fine-tuning, or LoRA adapters on a frozen base stored in model.dtype (default: bf16 under bf16 precision,
     * fp16 under fp16, else fp32), as the experiment says.
     */
    static Trainable forExperiment(dev.jtune.config.Experiment exp, ModelConfig config, Device device, Autocast.Mode precision,
                                   Ops kernels) {
        dev.jtune.config.LoraSection lora = exp.lora();
        if (!lora.enabled()) return new Full(config, device, kernels);
        ScalarType baseDtype = exp.model().dtype() != null ? Tensors.parseDtype(exp.model().dtype(), "model.dtype")
                : frozenBaseDtype(precision);
        LoraSpec spec = new LoraSpec(lora.r(), lora.alpha(), lora.dropout(), lora.targetModules(), lora.useRslora(), lora.initWeights());
        return new Adapters(config, device, baseDtype, spec, lora.adapterPath(), exp.training().seed(), kernels);
    }

    /** The dtype a frozen LoRA base is kept in when model.dtype does not say: that of the autocast, else fp32. */
    static ScalarType frozenBaseDtype(Autocast.Mode precision) {
        return precision == Autocast.Mode.BF16 ? ScalarType.BFloat16 : precision == Autocast.Mode.FP16 ? ScalarType.Half : ScalarType.Float;
    }

    /** Tensors the optimizer updates, by the name they are saved under. */
    abstract Map<String, Tensor> parameters();

    /** Which of them get weight decay. */
    abstract Predicate<String> decayed();

    /** Writes the trained weights (a model directory or an adapter directory) into {@code dir}; returns the files with their hashes. */
    abstract dev.jtune.io.WrittenFiles save(Path dir, Path baseModelDir, Path tokenizerDir, String chatTemplate) throws IOException;

    /** Restores the trained weights from a directory {@link #save} wrote. */
    abstract void restore(Path dir);

    /** A line for the console: what trains, and the memory it takes. */
    String describe() {
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
    static final class Full extends Trainable {
        private final Map<String, ParameterSpec.Entry> spec;

        Full(ModelConfig config, Device device, Ops kernels) {
            super(copyForTraining(config, device, kernels));
            this.spec = ParameterSpec.of(config);
        }

        private static CausalLM copyForTraining(ModelConfig config, Device device, Ops kernels) {
            Map<String, Tensor> params = new LinkedHashMap<>();
            try (CausalLM base = ModelLoader.load(config.source().getParent(), ScalarType.Float, device)) {
                for (Map.Entry<String, Tensor> e : base.parameters().entrySet()) {
                    Tensor p = e.getValue().detach().clone();
                    p.requires_grad_(true);
                    p.retainReference();
                    params.put(e.getKey(), p);
                }
            }
            return ModelLoader.create(config, params, ScalarType.Float, device, null, kernels);
        }

        @Override
        Map<String, Tensor> parameters() {
            return model.parameters();
        }

        /** No decay on biases, norms and embeddings (transformers' rule, by parameter kind). */
        @Override
        Predicate<String> decayed() {
            return n -> spec.get(n).kind() == ParameterSpec.Kind.LINEAR;
        }

        @Override
        dev.jtune.io.WrittenFiles save(Path dir, Path baseModelDir, Path tokenizerDir, String chatTemplate) throws IOException {
            return Checkpoints.writeModel(dir, model, baseModelDir, tokenizerDir, chatTemplate);
        }

        @Override
        void restore(Path dir) {
            try (CausalLM saved = ModelLoader.load(dir, ScalarType.Float, model.device()); NoGradGuard ng = new NoGradGuard()) {
                for (Map.Entry<String, Tensor> e : model.parameters().entrySet()) e.getValue().copy_(saved.parameters().get(e.getKey()));
            }
        }
    }

    /** LoRA: the base is frozen (no gradients, no optimizer state) in {@code baseDtype}; adapters train in fp32. */
    static final class Adapters extends Trainable {
        private final LoraSpec spec;
        private final Map<String, LoraAdapter> adapters;
        private final Map<String, Tensor> tensors;
        private final String baseModel;

        Adapters(ModelConfig config, Device device, ScalarType baseDtype, LoraSpec spec, Path startFrom, long seed, Ops kernels) {
            super(ModelLoader.load(config.source().getParent(), baseDtype, device, kernels));
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
            model.setAdapters(adapters);
        }

        LoraSpec spec() {
            return spec;
        }

        @Override
        Map<String, Tensor> parameters() {
            return tensors;
        }

        /** Adapter weights are matrices: all decay, as PEFT under transformers' Trainer does. */
        @Override
        Predicate<String> decayed() {
            return n -> true;
        }

        @Override
        dev.jtune.io.WrittenFiles save(Path dir, Path baseModelDir, Path tokenizerDir, String chatTemplate) throws IOException {
            return PeftAdapter.save(dir, spec, adapters, model.config(), baseModel)
                    .addAll(Checkpoints.writeTokenizer(dir, tokenizerDir, chatTemplate));
        }

        @Override
        void restore(Path dir) {
            PeftAdapter.Loaded saved = PeftAdapter.load(dir, model.config(), model.device(), false);
            try (NoGradGuard ng = new NoGradGuard()) {
                adapters.forEach((m, a) -> {
                    a.a().copy_(saved.adapters().get(m).a());
                    a.b().copy_(saved.adapters().get(m).b());
                });
            }
        }
    }
}
