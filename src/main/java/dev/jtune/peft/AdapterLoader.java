package dev.jtune.peft;

import dev.jtune.kernels.Ops;
import dev.jtune.model.CausalLM;
import dev.jtune.model.ModelLoader;
import dev.jtune.quant.QuantizationConfig;
import dev.jtune.quant.QuantizedCheckpoint;
import dev.jtune.quant.QuantizedModelLoader;
import org.bytedeco.pytorch.Device;
import org.bytedeco.pytorch.global.torch.ScalarType;

import java.nio.file.Files;
import java.nio.file.Path;

/** Loading a base model with a PEFT adapter attached. */
public final class AdapterLoader {
    private AdapterLoader() {}

    public static boolean isAdapterDir(Path dir) {
        return dir != null && Files.isRegularFile(dir.resolve(PeftAdapter.CONFIG));
    }

    /** {@link #load(Path, Path, ScalarType, Device, Ops)} under the default kernel policy, {@code auto}. */
    public static CausalLM load(Path modelDir, Path adapterDir, ScalarType dtype, Device device) {
        return load(modelDir, adapterDir, dtype, device, Ops.AUTO);
    }

    /**
     * The base model with the adapter in {@code adapterDir} attached (or the plain model when it is null), its ops
     * under the kernel policy {@code kernels}.
     */
    public static CausalLM load(Path modelDir, Path adapterDir, ScalarType dtype, Device device, Ops kernels) {
        return load(modelDir, adapterDir, dtype, device, kernels, null);
    }

    /**
     * As {@link #load(Path, Path, ScalarType, Device, Ops)}, with the base in 4 bits when {@code quantization} is not
     * null (QLoRA: quantized on load from a 16/32-bit directory), when {@code modelDir} is a pre-quantized directory,
     * or when the adapter was trained on a 4-bit base ({@link PeftAdapter#BASE_QUANTIZATION}): the base it learned on.
     */
    public static CausalLM load(Path modelDir, Path adapterDir, ScalarType dtype, Device device, Ops kernels,
                                QuantizationConfig quantization) {
        if (quantization == null) quantization = PeftAdapter.baseQuantization(adapterDir);
        CausalLM m = quantization != null || QuantizedCheckpoint.isQuantized(modelDir)
                ? QuantizedModelLoader.load(modelDir, dtype, device, kernels, quantization)
                : ModelLoader.load(modelDir, dtype, device, kernels);
        if (adapterDir != null) {
            try {
                m.setAdapters(PeftAdapter.load(adapterDir, m.config(), device, false).adapters());
            } catch (RuntimeException e) {
                m.close();
                throw e;
            }
        }
        return m;
    }

    /** Where the tokenizer is: the adapter directory when fine-tuning saved one there, else the model's. */
    public static Path tokenizerDir(Path modelDir, Path adapterDir) {
        return adapterDir != null && Files.isRegularFile(adapterDir.resolve("tokenizer.json")) ? adapterDir : modelDir;
    }
}
