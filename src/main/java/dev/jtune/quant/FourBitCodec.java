package dev.jtune.quant;

import dev.jtune.util.Tensors;
import dev.jtune.util.UserError;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.MemoryFormatOptional;
import org.bytedeco.pytorch.Scalar;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.TensorVector;
import org.bytedeco.pytorch.global.torch;
import org.bytedeco.pytorch.global.torch.ScalarType;

/**
 * bitsandbytes' 4-bit block-wise quantization (QLoRA), with LibTorch tensor ops: quantize one weight
 * into its {@link QuantizedTensor}, and dequantize it back.
 *
 * <p>Quantize (block size 64, as {@code kQuantizeBlockwise} does it): per block,
 * {@code absmax = max |x|} (float32), each value normalised by {@code x * (1 / absmax)} in float32
 * (an all-zero block gives NaN, hence code 0), coded by {@link QuantType#codes}, two codes per byte with
 * the first element in the high nibble; an odd count pads the last low nibble with the code of 0.
 * Double quantization then stores the absmax values as 8-bit codes: {@code offset = mean(absmax)} (the
 * float64 mean rounded to float32; bitsandbytes' device reduction may differ in the last bit, and the file
 * carries the value), {@code absmax - offset} in blocks of 256 normalised by their own absmax and coded
 * with the signed dynamic map by bitsandbytes' binary search ({@code dQuantize}).
 *
 * <p>Dequantize: {@code absmax = nested_quant_map[q] * nested_absmax[b / 256] + offset} (float32) with
 * double quantization, then {@code value = quant_map[code] * absmax[i / 64]} in float32, cast to the
 * state's dtype (round to nearest even). The maps come from the file, not from this class.
 *
 * <p>Large tensors go through in chunks of {@link #CHUNK} elements (whole blocks), so temporaries stay a
 * few MiB whatever the weight's size. Works on any device the tensors live on.
 */
@SuppressWarnings("try")
public final class FourBitCodec {
    /** Elements per chunk: a multiple of every block size, so blocks never straddle chunks. */
    static final long CHUNK = 1L << 20;

    private FourBitCodec() {}

    /**
     * Quantizes {@code w} (float32, float16 or bfloat16, any shape, finite) with block size 64.
     *
     * @param where names the tensor in error messages
     * @throws UserError if {@code w} is not a floating tensor, is empty, or holds NaN or infinity
     */
    public static QuantizedTensor quantize(Tensor w, QuantType type, boolean doubleQuant, String where) {
        ScalarType st = w.scalar_type().intern();
        if (st != ScalarType.Float && st != ScalarType.Half && st != ScalarType.BFloat16) {
            throw new UserError(where + ": cannot quantize a " + st + " tensor (expected float32, float16 or bfloat16)");
        }
        long n = w.numel();
        if (n == 0) throw new UserError(where + ": cannot quantize an empty tensor");
        try (PointerScope s = new PointerScope()) {
            if (!torch.isfinite(w).all().item_bool()) {
                throw new UserError(where + ": holds NaN or infinite values; refusing to quantize it");
            }
        }
        int bs = QuantState.BLOCKSIZE;
        QuantState plain = new QuantState(type, bs, dtypeName(st), Tensors.shape(w), 0, 0f);
        long blocks = plain.blocks();
        Tensor flat = w.reshape(-1);
        Tensor packed = torch.empty(new long[] {plain.packedBytes()}, Tensors.options(ScalarType.Byte, w.device()),
                new MemoryFormatOptional());
        Tensor absmax = torch.empty(new long[] {blocks}, Tensors.options(ScalarType.Float, w.device()),
                new MemoryFormatOptional());
        for (long start = 0; start < n; start += CHUNK) {
            try (PointerScope s = new PointerScope()) {
                long len = Math.min(CHUNK, n - start);
                long nb = (len + bs - 1) / bs;
                Tensor x = flat.narrow(0, start, len).to(ScalarType.Float);
                if (nb * bs != len) x = torch.cat(new TensorVector(x, torch.zeros(new long[] {nb * bs - len},
                        Tensors.options(ScalarType.Float, w.device()))), 0);
                Tensor xb = x.view(nb, bs);                                          // (nb, 64)
                Tensor am = xb.abs().amax(new long[] {1}, false);                    // (nb)
                absmax.narrow(0, start / bs, nb).copy_(am);
                Tensor norm = xb.mul(am.reciprocal().unsqueeze(1)).view(-1);        // x * (1/absmax), float32
                long keep = len + (len & 1);                                         // an odd tail keeps its pad
                Tensor codes = type.codes(norm).narrow(0, 0, keep).to(ScalarType.Byte).view(keep / 2, 2);
                Tensor bytes = codes.select(1, 0).bitwise_left_shift(new Scalar(4)).bitwise_or(codes.select(1, 1));
                packed.narrow(0, start / 2, keep / 2).copy_(bytes);
            }
        }
        Tensor quantMap = type.quantMap().to(w.device(), ScalarType.Float);
        Tensor packed2 = packed.view(plain.packedBytes(), 1);
        if (!doubleQuant) {
            return new QuantizedTensor(plain, packed2, absmax, quantMap, null, null);
        }
        Nested nested = quantizeAbsmax(absmax);
        QuantState state = new QuantState(type, bs, plain.dtype(), plain.shape(), QuantState.NESTED_BLOCKSIZE,
                nested.offset);
        return new QuantizedTensor(state, packed2, nested.codes, quantMap, nested.absmax, nested.map);
    }

    private record Nested(Tensor codes, Tensor absmax, Tensor map, float offset) {}

    /** Double quantization of the float32 absmax values [B]: uint8 codes [B], nested absmax [ceil(B/256)]. */
    private static Nested quantizeAbsmax(Tensor absmax) {
        int nbs = QuantState.NESTED_BLOCKSIZE;
        long b = absmax.numel();
        long nb = (b + nbs - 1) / nbs;
        float offset;
        try (PointerScope s = new PointerScope()) {
            offset = (float) absmax.to(ScalarType.Double).mean().item_double();
        }
        Tensor map = DynamicMap.tensor().to(absmax.device(), ScalarType.Float);
        Tensor codes;
        Tensor nestedAbsmax;
        try (PointerScope s = new PointerScope()) {
            Tensor c = absmax.sub(new Scalar(offset));                           // float32 - float32
            if (nb * nbs != b) c = torch.cat(new TensorVector(c, torch.zeros(new long[] {nb * nbs - b},
                    Tensors.options(ScalarType.Float, absmax.device()))), 0);
            Tensor cb = c.view(nb, nbs);
            nestedAbsmax = cb.abs().amax(new long[] {1}, false);                 // (nb)
            Tensor y = cb.mul(nestedAbsmax.reciprocal().unsqueeze(1)).view(-1);
            codes = quantize8(y, map).narrow(0, 0, b).to(ScalarType.Byte).contiguous();
            codes.retainReference();
            nestedAbsmax.retainReference();
        }
        return new Nested(codes, nestedAbsmax, map, offset);
    }

    /**
     * bitsandbytes' {@code dQuantize} (no stochastic rounding) for every element of y (1-D float32) against
     * a sorted 256-entry map: a 7-step binary search from the middle, then the nearer of the pivot and the
     * neighbour on x's side by the float32 midpoint (a tie keeps the pivot). int64 codes.
     */
    static Tensor quantize8(Tensor y, Tensor map) {
        long n = y.numel();
        Tensor pivot = full(n, 127, y);
        Tensor upperPivot = full(n, 255, y);
        Tensor lowerPivot = full(n, 0, y);
        Tensor lower = torch.full(new long[] {n}, new Scalar(-1.0f), Tensors.options(ScalarType.Float, y.device()));
        Tensor upper = torch.full(new long[] {n}, new Scalar(1.0f), Tensors.options(ScalarType.Float, y.device()));
        Tensor val = map.index_select(0, pivot);
        for (long i = 64; i > 0; i >>= 1) {
            Tensor gt = y.gt(val);
            lowerPivot = torch.where(gt, pivot, lowerPivot);
            lower = torch.where(gt, val, lower);
            upperPivot = torch.where(gt, upperPivot, pivot);
            upper = torch.where(gt, upper, val);
            pivot = torch.where(gt, pivot.add(new Scalar(i)), pivot.sub(new Scalar(i)));
            val = map.index_select(0, pivot);
        }
        upper = torch.where(upperPivot.eq(new Scalar(255)), map.index_select(0, full(n, 255, y)), upper);
        lower = torch.where(lowerPivot.eq(new Scalar(0)), map.index_select(0, full(n, 0, y)), lower);
        Tensor gt = y.gt(val);
        Tensor midUp = upper.add(val).mul(new Scalar(0.5f));
        Tensor midDown = lower.add(val).mul(new Scalar(0.5f));
        Tensor up = torch.where(y.gt(midUp), upperPivot, pivot);
        Tensor down = torch.where(y.lt(midDown), lowerPivot, pivot);
        return torch.where(gt, up, down);
    }

    private static Tensor full(long n, long v, Tensor like) {
        return torch.full(new long[] {n}, new Scalar(v), Tensors.options(ScalarType.Long, like.device()));
    }

    /** The float32 absmax of every block [B], undoing double quantization when the state has it. */
    public static Tensor absmax(QuantizedTensor q) {
        QuantState st = q.state();
        if (!st.nested()) return q.absmax();
        int nbs = st.nestedBlocksize();
        long b = st.blocks();
        long nb = st.nestedBlocks();
        Tensor values = q.nestedQuantMap().index_select(0, q.absmax().reshape(-1).to(ScalarType.Long));   // (B)
        Tensor scale = q.nestedAbsmax().reshape(-1).unsqueeze(1).expand(nb, nbs).reshape(-1).narrow(0, 0, b);
        return values.mul(scale).add(new Scalar(st.nestedOffset()));                                       // float32
    }

    /** Dequantizes to the quant state's dtype, in the state's shape. */
    public static Tensor dequantize(QuantizedTensor q) {
        return dequantize(q, q.state().scalarType());
    }

    /**
     * Dequantizes to {@code dtype}: each value is computed in float32 ({@code quant_map[code] * absmax}) and
     * rounded once to {@code dtype}. Shape: the state's. Device: the packed tensor's.
     */
    public static Tensor dequantize(QuantizedTensor q, ScalarType dtype) {
        QuantState st = q.state();
        long n = st.numel();
        int bs = st.blocksize();
        Tensor out = torch.empty(new long[] {n}, Tensors.options(dtype, q.packed().device()), new MemoryFormatOptional());
        try (PointerScope outer = new PointerScope()) {
            Tensor absmax = absmax(q);
            Tensor map = q.quantMap().reshape(-1);
            Tensor packed = q.packed().reshape(-1);
            long chunk = Math.max(CHUNK / bs, 1) * bs;
            for (long start = 0; start < n; start += chunk) {
                try (PointerScope s = new PointerScope()) {
                    long len = Math.min(chunk, n - start);
                    long nb = (len + bs - 1) / bs;
                    Tensor bytes = packed.narrow(0, start / 2, (len + 1) / 2);
                    Tensor hi = bytes.bitwise_right_shift(new Scalar(4));
                    Tensor lo = bytes.bitwise_and(new Scalar(15));
                    Tensor codes = torch.stack(new TensorVector(hi, lo), 1).view(-1).narrow(0, 0, len).to(ScalarType.Long);
                    Tensor vals = map.index_select(0, codes);                                          // float32 (len)
                    Tensor scale = absmax.narrow(0, start / bs, nb).unsqueeze(1).expand(nb, bs).reshape(-1).narrow(0, 0, len);
                    out.narrow(0, start, len).copy_(vals.mul(scale));       // the one rounding to dtype
                }
            }
        }
        return out.view(st.shape());
    }

    static String dtypeName(ScalarType st) {
        return Tensors.hfName(st);
    }
}
