package dev.jtune.kernels;

/** A kernel launcher refused its arguments or a CUDA call failed; the message has the CUDA error text. */
final class KernelException extends RuntimeException {
    private static final long serialVersionUID = 1L;

    public KernelException(String message) {
        super(message);
    }
}
