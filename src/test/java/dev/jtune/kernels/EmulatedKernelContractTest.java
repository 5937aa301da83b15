package dev.jtune.kernels;

/**
 * The kernels' contract ({@link KernelContract}) on the CPU, against {@link EmulatedKernels}: the same test bodies and
 * tolerances as on the GPU, in every CI run. The emulation rounds where each kernel rounds (kernels/*.cu: products to
 * the storage dtype where transformers rounds them, float32 accumulation, one rounding on store), so a tolerance that
 * holds here holds for a correct kernel.
 */
class EmulatedKernelContractTest extends KernelContract {
    @Override
    KernelBackend backend() {
        return EmulatedKernels.INSTANCE;
    }

    @Override
    String device() {
        return "cpu";
    }

    @Override
    boolean large() {
        return false;
    }

    @Override
    Ops kernelOps() {
        return Ops.withBackend(EmulatedKernels.INSTANCE);
    }
}
