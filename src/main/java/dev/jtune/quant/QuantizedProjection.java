package dev.jtune.quant;

import dev.jtune.kernels.Ops;
import dev.jtune.model.FrozenLinear;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch.ScalarType;

/**
 * One linear layer of a 4-bit base, as bitsandbytes' {@code Linear4bit}: x is cast to the compute dtype, multiplied by
 * W (out, in) dequantized inside {@link QuantizedLinear} (no dequantized copy kept), plus the frozen bias, and the
 * result is cast back to x's dtype. GPT-2's Conv1D weights are quantized as W^T (out, in), as bitsandbytes does.
 *
 * @param weight  the 4-bit weight, state shape (out, in), on the model's device
 * @param bias    (out) in the model's dtype, or null
 * @param compute {@code bnb_4bit_compute_dtype}
 * @param ops     the kernel policy the dequantization runs under
 */
public record QuantizedProjection(QuantizedTensor weight, Tensor bias, ScalarType compute, Ops ops) implements FrozenLinear {

    @Override
    public Tensor apply(Tensor x) {
        ScalarType in = x.scalar_type().intern();
        Tensor y = QuantizedLinear.forward(x, weight, bias, compute, ops);
        return in == compute ? y : y.to(in);
    }

    /** W (out, in) dequantized to the compute dtype, as each forward does (for the benchmark of its cost). */
    public Tensor dequantize() {
        return QuantizedLinear.weight(weight, compute, ops, weight.packed().device());
    }

    @Override
    public long parameterCount() {
        return weight.state().numel() + (bias == null ? 0 : bias.numel());
    }

    /** Releases what the loader retained: the weight's codes, absmax and maps, and the bias. */
    @Override
    public void close() {
        for (Tensor t : new Tensor[] {weight.packed(), weight.absmax(), weight.quantMap(), weight.nestedAbsmax(),
                weight.nestedQuantMap(), bias}) {
            if (t != null) t.releaseReference();
        }
    }
}
