package dev.jtune.kernels;

import org.junit.jupiter.api.Tag;

/** The kernels' contract ({@link KernelContract}) on the GPU: the CUDA kernels. Skips without CUDA or the kernel library. */
@Tag("gpu")
class KernelGpuTest extends KernelContract {
    @Override
    KernelBackend backend() {
        dev.jtune.GpuTests.assumeCuda();
        dev.jtune.GpuTests.assumeGpu(KernelLibrary.available(), KernelLibrary.reason());
        return CudaKernels.INSTANCE;
    }

    @Override
    String device() {
        return "cuda";
    }

    @Override
    Ops kernelOps() {
        return Ops.AUTO;
    }
}
