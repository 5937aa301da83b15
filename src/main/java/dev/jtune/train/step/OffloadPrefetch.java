package dev.jtune.train.step;

import org.bytedeco.pytorch.BoolOptional;
import org.bytedeco.pytorch.Device;
import org.bytedeco.pytorch.DeviceOptional;
import org.bytedeco.pytorch.MemoryFormatOptional;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.cuda.CUDAEvent;
import org.bytedeco.pytorch.cuda.CUDAStream;
import org.bytedeco.pytorch.cuda.CUDAStreamGuard;
import org.bytedeco.pytorch.global.torch;
import org.bytedeco.pytorch.global.torch_cuda;

/**
 * CUDA only: brings offloaded block inputs (pinned host memory) back to the device on a side stream, ahead of use, so
 * the copy of block i-1's input overlaps block i's recompute and backward ({@link ActivationCheckpointing}).
 *
 * <p>This class touches the CUDA preset's classes ({@code org.bytedeco.pytorch.cuda.*}), which need the
 * {@code org.bytedeco:cuda} jar even to load: it is initialised only when offloading on CUDA (the -Pgpu build); the
 * CPU path never names it at run time.
 *
 * <p>Ordering, per fetched tensor: the destination is allocated while the compute stream is current (the compute
 * stream uses and frees it, so the caching allocator's stream bookkeeping stays right); the side stream first waits
 * for the compute stream's work so far (the block may be memory the compute stream just freed), copies, and records
 * an event; the compute stream waits for that event before the recompute reads the tensor ({@link #await}).
 */
final class OffloadPrefetch {
    private final Device device;
    private final CUDAStream compute;
    private final CUDAStream side;

    /** A copy in flight: the device tensor and the event its copy completes. Both retained until {@link #release}. */
    static final class Fetch {
        private final Tensor onDevice;
        private final CUDAEvent copied;

        private Fetch(Tensor onDevice, CUDAEvent copied) {
            this.onDevice = onDevice.retainReference();
            this.copied = copied.retainReference();
        }

        /** Releases the handles once the block that used the tensor is done with it. */
        void release() {
            onDevice.releaseReference();
            copied.releaseReference();
        }
    }

    /** For the current stream of {@code device}; call from the thread that runs the step. */
    OffloadPrefetch(Device device) {
        byte index = device.has_index() ? device.index() : torch_cuda.current_device();
        this.device = new Device("cuda:" + index);
        this.compute = torch_cuda.getCurrentCUDAStream(index).retainReference();
        this.side = torch_cuda.getStreamFromPool(false, index).retainReference();
    }

    /** Starts the copy of {@code host} (pinned, as {@link ActivationCheckpointing} keeps it) to the device. */
    Fetch start(Tensor host) {
        Tensor dst = torch.empty(dev.jtune.util.Tensors.shape(host),
                host.options().device(new DeviceOptional(device)).pinned_memory(new BoolOptional(false)), new MemoryFormatOptional());
        CUDAEvent before = new CUDAEvent();
        before.record(compute);
        before.block(side);                                   // the side stream writes dst after compute's earlier work
        try (CUDAStreamGuard onSide = new CUDAStreamGuard(side.unwrap())) {
            dst.copy_(host, true);                            // asynchronous: pinned host -> device, on the side stream
        }
        CUDAEvent copied = new CUDAEvent();
        copied.record(side);
        return new Fetch(dst, copied);
    }

    /** Makes the compute stream wait for the copy (no host sync) and returns the tensor on the device. */
    Tensor await(Fetch f) {
        f.copied.block(compute);
        return f.onDevice;
    }

    /** Releases the streams' handles (the streams themselves belong to LibTorch's pool). */
    void close() {
        compute.releaseReference();
        side.releaseReference();
    }
}
