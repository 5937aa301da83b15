package dev.jtune.kernels;

/** For tests in other packages: the kernel policy whose kernel paths run {@link EmulatedKernels} (CPU). */
public final class EmulatedOps {
    private EmulatedOps() {}

    public static Ops policy() {
        return Ops.withBackend(EmulatedKernels.INSTANCE);
    }
}
