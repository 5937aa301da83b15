package dev.jtune.train.step;

import dev.jtune.config.Precision;
import org.bytedeco.pytorch.Device;
import org.bytedeco.pytorch.global.torch;
import org.bytedeco.pytorch.global.torch.DeviceType;
import org.bytedeco.pytorch.global.torch.ScalarType;

/**
 * A scope in which matrix products run in bf16 or fp16 (LibTorch autocast) while parameters stay fp32;
 * norms, softmax and the loss are computed in fp32 by the model code itself. Thread-local, like
 * torch.autocast. {@code FP32} makes it a no-op. Takes a resolved {@link Precision} (not {@code AUTO}).
 */
public final class Autocast implements AutoCloseable {
    private final DeviceType type;
    private final boolean wasEnabled;

    private Autocast(DeviceType type, boolean wasEnabled) {
        this.type = type;
        this.wasEnabled = wasEnabled;
    }

    public static Autocast enter(Precision mode, Device device) {
        if (mode == Precision.AUTO) throw new IllegalArgumentException("resolve the precision for the device first");
        if (mode == Precision.FP32) return new Autocast(null, false);
        DeviceType type = device.is_cuda() ? DeviceType.CUDA : DeviceType.CPU;
        boolean was = torch.is_autocast_enabled(type);
        torch.set_autocast_dtype(type, mode == Precision.FP16 ? ScalarType.Half : ScalarType.BFloat16);
        torch.set_autocast_enabled(type, true);
        torch.increment_nesting();
        return new Autocast(type, was);
    }

    @Override
    public void close() {
        if (type == null) return;
        // leaving the outermost scope clears the cache of bf16 weight copies, as torch.autocast does
        if (torch.decrement_nesting() == 0) torch.clear_cache();
        torch.set_autocast_enabled(type, wasEnabled);
    }
}
