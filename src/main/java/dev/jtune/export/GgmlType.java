package dev.jtune.export;

/**
 * The ggml tensor types jtune writes, with ggml's numeric ids ({@code enum ggml_type} in ggml.h) and block
 * layout: a row of {@code n} elements (n a multiple of {@link #blockSize}) takes {@code n / blockSize * typeSize} bytes.
 */
public enum GgmlType {
    F32(0, 1, 4),
    F16(1, 1, 2),
    Q4_0(2, 32, 18),      // fp16 scale + 16 bytes of nibbles
    Q5_0(6, 32, 22),      // fp16 scale + 4 bytes of fifth bits + 16 bytes of nibbles
    Q8_0(8, 32, 34),      // fp16 scale + 32 int8
    Q4_K(12, 256, 144),   // fp16 d, fp16 dmin, 12 bytes of 6-bit scales/mins, 128 bytes of nibbles
    Q6_K(14, 256, 210),   // 128 bytes low nibbles, 64 bytes high 2 bits, 16 int8 scales, fp16 d
    BF16(30, 1, 2);

    public final int id;
    public final int blockSize;
    public final int typeSize;

    GgmlType(int id, int blockSize, int typeSize) {
        this.id = id;
        this.blockSize = blockSize;
        this.typeSize = typeSize;
    }

    /** Bytes of a row of {@code n} elements; {@code n} must be a multiple of the block size. */
    public long rowBytes(long n) {
        if (n % blockSize != 0) throw new IllegalArgumentException(this + ": row of " + n + " is not a multiple of " + blockSize);
        return n / blockSize * typeSize;
    }

    public boolean quantized() {
        return blockSize > 1;
    }
}
