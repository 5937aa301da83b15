package dev.jtune.quant;

import org.bytedeco.pytorch.Tensor;

import java.util.LinkedHashMap;
import java.util.Map;

/**
 * One 4-bit quantized weight in bitsandbytes' layout: the tensors a checkpoint stores for it, plus its
 * quant state. Shapes with {@code n = state.numel()}, {@code B = state.blocks()}:
 * <ul>
 *   <li>{@code packed}: uint8 {@code [(n + 1) / 2, 1]}, two codes per byte, element {@code 2i} in the high nibble</li>
 *   <li>{@code absmax}: float32 {@code [B]}; with double quantization uint8 {@code [B]} (codes of the dynamic map)</li>
 *   <li>{@code quantMap}: float32 {@code [16]}, the value of each 4-bit code</li>
 *   <li>{@code nestedAbsmax}: float32 {@code [ceil(B / 256)]}, or null without double quantization</li>
 *   <li>{@code nestedQuantMap}: float32 {@code [256]}, the signed 8-bit dynamic map, or null</li>
 * </ul>
 */
public record QuantizedTensor(QuantState state, Tensor packed, Tensor absmax, Tensor quantMap, Tensor nestedAbsmax,
                              Tensor nestedQuantMap) {

    /** The suffix of the packed quant-state tensor, e.g. {@code quant_state.bitsandbytes__nf4}. */
    public static String stateKey(QuantType type) {
        return "quant_state.bitsandbytes__" + type.bnbName();
    }

    /**
     * The state-dict entries transformers + bitsandbytes save for this weight, named under {@code weightName}
     * (e.g. {@code model.layers.0.mlp.up_proj.weight}): the weight itself (packed codes), {@code .absmax},
     * {@code .quant_map}, with double quantization {@code .nested_absmax} and {@code .nested_quant_map},
     * and {@code .quant_state.bitsandbytes__nf4} (the state's JSON as uint8). Same order as bitsandbytes.
     */
    public Map<String, Tensor> stateDict(String weightName) {
        Map<String, Tensor> out = new LinkedHashMap<>();
        out.put(weightName, packed);
        out.put(weightName + ".absmax", absmax);
        out.put(weightName + ".quant_map", quantMap);
        if (state.nested()) {
            out.put(weightName + ".nested_absmax", nestedAbsmax);
            out.put(weightName + ".nested_quant_map", nestedQuantMap);
        }
        out.put(weightName + "." + stateKey(state.type()), dev.jtune.util.Tensors.bytes(state.toJsonBytes()));
        return out;
    }

    /** Bytes this weight occupies in a checkpoint (all its tensors). */
    public long storageBytes() {
        long b = packed.numel() + absmax.numel() * absmax.element_size() + quantMap.numel() * 4
                + state.toJsonBytes().length;
        if (state.nested()) b += nestedAbsmax.numel() * 4 + nestedQuantMap.numel() * 4;
        return b;
    }
}
