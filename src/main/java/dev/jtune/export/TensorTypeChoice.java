package dev.jtune.export;

/**
 * Which ggml type each tensor gets for an {@link ExportType}. Float types: every 2-D weight in that type, 1-D
 * tensors (norms, biases) in F32 as convert_hf_to_gguf.py does. Quantized types follow llama.cpp's
 * {@code llama_tensor_get_type} (src/llama-quant.cpp); see {@link QuantMix}.
 */
final class TensorTypeChoice {
    private TensorTypeChoice() {}

    /**
     * @param name       the GGUF tensor name
     * @param shape      PyTorch order (rows, row length)
     * @param mix        the per-model state of the quantized mixes (layer counters), or null for float types
     */
    public static GgmlType choose(ExportType type, String name, long[] shape, QuantMix mix) {
        if (shape.length < 2 || name.equals("rope_freqs.weight")) return GgmlType.F32;
        if (!type.base.quantized()) return type.base;
        return mix.choose(name, shape);
    }
}
