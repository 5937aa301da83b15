package dev.jtune.util;

import org.bytedeco.javacpp.BytePointer;
import org.bytedeco.javacpp.FloatPointer;
import org.bytedeco.javacpp.LongPointer;
import org.bytedeco.pytorch.Device;
import org.bytedeco.pytorch.ScalarTypeOptional;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.TensorOptions;
import org.bytedeco.pytorch.global.torch;
import org.bytedeco.pytorch.global.torch.ScalarType;

import java.util.Locale;

/** Small conversions between Java arrays and LibTorch tensors, and names for dtypes. */
public final class Tensors {
    private Tensors() {}

    public static TensorOptions options(ScalarType dtype) {
        return new TensorOptions().dtype(new ScalarTypeOptional(dtype));
    }

    public static TensorOptions options(ScalarType dtype, Device device) {
        return options(dtype).device(new org.bytedeco.pytorch.DeviceOptional(device));
    }

    /** p's gradient, or null when it has none (a parameter that took no part in the loss, or before any backward). */
    public static Tensor gradOf(Tensor p) {
        Tensor g = p.grad();
        return g == null || g.isNull() || !g.defined() ? null : g;
    }

    /** A (rows, cols) int64 tensor on the CPU, copied from {@code ids}; all rows must have one length. */
    public static Tensor longs(long[][] ids) {
        int rows = ids.length, cols = ids[0].length;
        long[] flat = new long[rows * cols];
        for (int r = 0; r < rows; r++) {
            if (ids[r].length != cols) throw new IllegalArgumentException("ragged rows");
            System.arraycopy(ids[r], 0, flat, r * cols, cols);
        }
        return longs(flat).view(rows, cols);
    }

    /** A 1-D int64 tensor on the CPU, copied from {@code values}. */
    public static Tensor longs(long[] values) {
        try (LongPointer p = new LongPointer(values)) {
            return torch.from_blob(p, new long[] {values.length}, options(ScalarType.Long)).clone();
        }
    }

    /** A 1-D float32 tensor on the CPU, copied from {@code values}. */
    public static Tensor floats(float[] values) {
        try (FloatPointer p = new FloatPointer(values)) {
            return torch.from_blob(p, new long[] {values.length}, options(ScalarType.Float)).clone();
        }
    }

    /** A 1-D uint8 tensor on the CPU, copied from {@code bytes}. */
    public static Tensor bytes(byte[] bytes) {
        try (BytePointer p = new BytePointer(bytes)) {
            return torch.from_blob(p, new long[] {bytes.length}, options(ScalarType.Byte)).clone();
        }
    }

    /** The bytes of a uint8 tensor (any shape, flattened; copied to the CPU when needed). */
    public static byte[] toBytes(Tensor t) {
        Tensor c = t.contiguous().cpu();
        byte[] out = new byte[(int) c.numel()];
        new BytePointer(c.data_ptr()).capacity(out.length).get(out);
        return out;
    }

    /** All elements, flattened in row-major order, as float32 (copies to CPU when needed). */
    public static float[] toFloats(Tensor t) {
        Tensor c = t.detach().to(new org.bytedeco.pytorch.Device("cpu"), ScalarType.Float).contiguous();
        float[] out = new float[(int) c.numel()];
        new FloatPointer(c.data_ptr_float()).capacity(out.length).get(out);
        return out;
    }

    /** All elements, flattened in row-major order, as int64 (copies to CPU when needed). */
    public static long[] toLongs(Tensor t) {
        Tensor c = t.detach().to(new org.bytedeco.pytorch.Device("cpu"), ScalarType.Long).contiguous();
        long[] out = new long[(int) c.numel()];
        new LongPointer(c.data_ptr_long()).capacity(out.length).get(out);
        return out;
    }

    public static long[] shape(Tensor t) {
        return t.sizes().vec().get();
    }

    /** Bytes per element of a floating dtype we compute in. */
    public static int elementSize(ScalarType t) {
        ScalarType s = t.intern();
        if (s == ScalarType.Float || s == ScalarType.Int) return 4;
        if (s == ScalarType.BFloat16 || s == ScalarType.Half || s == ScalarType.Short) return 2;
        if (s == ScalarType.Double || s == ScalarType.Long) return 8;
        if (s == ScalarType.Byte || s == ScalarType.Char || s == ScalarType.Bool) return 1;
        throw new IllegalArgumentException("unsupported dtype " + t);
    }

    /**
     * Parses a user's dtype name: the Hugging Face spellings ("float32", "bfloat16", "float16") and the
     * short ones ("fp32", "bf16", "fp16"). {@code where} names the flag or key for the error message.
     */
    public static ScalarType parseDtype(String name, String where) {
        switch (name.toLowerCase(Locale.ROOT)) {
            case "float32": case "fp32": case "float": return ScalarType.Float;
            case "bfloat16": case "bf16": return ScalarType.BFloat16;
            case "float16": case "fp16": case "half": return ScalarType.Half;
            default:
                throw new UserError(where + ": unknown dtype '" + name + "'; expected one of float32, bfloat16, float16");
        }
    }

    /** The Hugging Face name of a dtype, as config.json's torch_dtype spells it. */
    public static String hfName(ScalarType t) {
        ScalarType s = t.intern();
        if (s == ScalarType.Float) return "float32";
        if (s == ScalarType.BFloat16) return "bfloat16";
        if (s == ScalarType.Half) return "float16";
        return t.toString().toLowerCase(Locale.ROOT);
    }
}
