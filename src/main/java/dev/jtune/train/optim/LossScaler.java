package dev.jtune.train.optim;

import dev.jtune.util.AtenOps;
import dev.jtune.util.Tensors;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.Device;
import org.bytedeco.pytorch.IValue;
import org.bytedeco.pytorch.IValueVector;
import org.bytedeco.pytorch.NoGradGuard;
import org.bytedeco.pytorch.OperatorHandle;
import org.bytedeco.pytorch.Scalar;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch;
import org.bytedeco.pytorch.global.torch.ScalarType;

import java.util.ArrayList;
import java.util.Collection;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Dynamic loss scaling for fp16 training, with the semantics of PyTorch's {@code torch.amp.GradScaler}
 * (one optimizer): the loss is multiplied by a scale before backward so that small fp16 gradients do
 * not flush to zero; before the optimizer step the gradients are divided by the scale again and
 * checked for inf/NaN; a step with a non-finite gradient is skipped and the scale backs off; after
 * {@code growthInterval} consecutive finite steps the scale grows.
 *
 * <p>The arithmetic is ATen's own, reached through the boxed dispatcher as GradScaler reaches it:
 * {@code aten::_amp_foreach_non_finite_check_and_unscale_} (grads ×= inv_scale in place; found_inf
 * set to 1 if any element is inf/NaN) and {@code aten::_amp_update_scale_} (back off and reset the
 * tracker on found_inf, else count, and grow at the interval unless the grown scale is not finite).
 * Both have CPU kernels in LibTorch 2.10 (checked with {@code OperatorHandle.hasKernelForDispatchKey});
 * CUDA kernels come with the GPU build. The {@code Tensor[]} argument is built by {@link AtenOps#tensorList}.
 *
 * <p>Scale ({@code 0-d float32}) and growth tracker ({@code 0-d int32}) live on the device as tensors,
 * laid out as GradScaler keeps them. Host syncs: exactly one per step, in
 * {@link #unscaleAndCheck}, to decide whether to step (GradScaler pays the same sync in
 * {@code step()}); {@link #scaleValue()} syncs to report. {@link #update()} does not sync.
 *
 * <p>As GradScaler does, unscaling refuses fp16 gradients (keep trainable parameters fp32 and run
 * the forward in fp16 autocast); bf16/fp32/fp64 gradients are fine. Gradients are grouped per device
 * and dtype, one kernel call per group, with one found_inf per device folded into the scaler's.
 *
 * <p>Order per optimizer step: {@code scale(loss).backward()} for every micro-batch;
 * {@code unscaleAndCheck(params)} once; if true, clip and step; zero the gradients; {@code update()}.
 * Not thread-safe; one instance per optimizer.
 */
public final class LossScaler {
    private static final String UNSCALE_OP = "aten::_amp_foreach_non_finite_check_and_unscale_";
    private static final String UPDATE_OP = "aten::_amp_update_scale_";

    private final Device device;
    private final double initScale, growthFactor, backoffFactor;
    private final int growthInterval;
    private final boolean enabled;
    // persistent device tensors (retained: they outlive the caller's PointerScopes)
    private final Tensor scaleT;         // 0-d float32
    private final Tensor growthTracker;  // 0-d int32
    private final Tensor foundInf;       // 0-d float32, this step's verdict, read by update()
    private final OperatorHandle unscaleOp, updateOp;
    private boolean unscaled;            // unscaleAndCheck ran since the last update()

    /**
     * @param device         where the scale and growth tracker live (the parameters' device)
     * @param initScale      initial scale, GradScaler's default 2^16 = 65536
     * @param growthFactor   scale multiplier after {@code growthInterval} finite steps in a row (&gt; 1; default 2)
     * @param backoffFactor  scale multiplier on a step with inf/NaN gradients (in (0, 1); default 0.5)
     * @param growthInterval consecutive finite steps before growing (&ge; 1; default 2000)
     * @param enabled        false makes every method a no-op (fp32/bf16 runs): scale 1, never skips
     */
    public LossScaler(Device device, double initScale, double growthFactor, double backoffFactor, int growthInterval, boolean enabled) {
        if (!(growthFactor > 1.0)) throw new IllegalArgumentException("The growth factor must be > 1.0, got " + growthFactor);
        if (!(backoffFactor < 1.0 && backoffFactor > 0)) throw new IllegalArgumentException("The backoff factor must be in (0, 1), got " + backoffFactor);
        if (growthInterval < 1) throw new IllegalArgumentException("The growth interval must be >= 1, got " + growthInterval);
        if (!(initScale > 0) || Double.isInfinite(initScale)) throw new IllegalArgumentException("The initial scale must be finite and > 0, got " + initScale);
        this.device = device;
        this.initScale = initScale;
        this.growthFactor = growthFactor;
        this.backoffFactor = backoffFactor;
        this.growthInterval = growthInterval;
        this.enabled = enabled;
        if (!enabled) {
            scaleT = growthTracker = foundInf = null;
            unscaleOp = updateOp = null;
            return;
        }
        scaleT = torch.full(new long[0], new Scalar(initScale), Tensors.options(ScalarType.Float, device));
        growthTracker = torch.zeros(new long[0], Tensors.options(ScalarType.Int, device));
        foundInf = torch.zeros(new long[0], Tensors.options(ScalarType.Float, device));
        scaleT.retainReference();
        growthTracker.retainReference();
        foundInf.retainReference();
        unscaleOp = AtenOps.op(UNSCALE_OP, "");
        updateOp = AtenOps.op(UPDATE_OP, "");
    }

    /** PyTorch's defaults: init scale 65536, growth 2, backoff 0.5, interval 2000. */
    public LossScaler(Device device, boolean enabled) {
        this(device, 65536.0, 2.0, 0.5, 2000, enabled);
    }

    public boolean enabled() {
        return enabled;
    }

    /** {@code loss * scale}, differentiable (the loss itself when disabled). */
    public Tensor scale(Tensor loss) {
        if (!enabled) return loss;
        return loss.mul(scaleT.to(loss.device(), ScalarType.Float));
    }

    /**
     * Divides every defined {@code .grad()} of {@code params} by the scale, in place, and reports
     * whether all of them are finite. Call once per optimizer step, after the last backward and
     * before gradient clipping. On false, skip the optimizer step (the gradients then hold inf/NaN;
     * zero them as usual). One host sync. Always true when disabled (nothing is checked).
     *
     * @throws IllegalStateException    when called twice without {@link #update()} in between
     * @throws IllegalArgumentException for fp16 gradients, which GradScaler also refuses to unscale
     */
    public boolean unscaleAndCheck(Collection<Tensor> params) {
        if (!enabled) return true;
        if (unscaled) throw new IllegalStateException("unscaleAndCheck() has already been called since the last update()");
        boolean allFinite;
        try (PointerScope scope = new PointerScope(); NoGradGuard ng = new NoGradGuard()) {
            // device -> dtype -> grads, validated before anything is modified
            Map<String, Map<ScalarType, List<Tensor>>> groups = new LinkedHashMap<>();
            Map<String, Device> devices = new LinkedHashMap<>();
            for (Tensor p : params) {
                Tensor g = Tensors.gradOf(p);
                if (g == null) continue;
                ScalarType dt = g.scalar_type().intern();
                if (dt == ScalarType.Half) throw new IllegalArgumentException("Attempting to unscale FP16 gradients: keep trainable parameters in fp32 (fp16 autocast for the forward)");
                if (g.is_sparse()) throw new IllegalArgumentException("sparse gradients are not supported");
                Device gd = g.device();
                String key = gd.str().getString();
                devices.putIfAbsent(key, gd);
                groups.computeIfAbsent(key, k -> new LinkedHashMap<>()).computeIfAbsent(dt, k -> new ArrayList<>()).add(g);
            }
            foundInf.zero_();
            // GradScaler: inv_scale = self._scale.double().reciprocal().float()
            Tensor invScale = scaleT.to(ScalarType.Double).reciprocal().to(ScalarType.Float);
            String home = device.str().getString();
            for (Map.Entry<String, Map<ScalarType, List<Tensor>>> e : groups.entrySet()) {
                boolean local = e.getKey().equals(home);
                Device gd = devices.get(e.getKey());
                Tensor found = local ? foundInf : torch.zeros(new long[0], Tensors.options(ScalarType.Float, gd));
                Tensor inv = local ? invScale : invScale.to(gd, ScalarType.Float);
                for (List<Tensor> grads : e.getValue().values()) {
                    unscaleOp.callBoxed(new IValueVector(AtenOps.tensorList(grads), new IValue(found), new IValue(inv)));
                }
                if (!local) foundInf.add_(found.to(device, ScalarType.Float));
            }
            allFinite = foundInf.item_double() == 0.0;   // host sync: the skip decision
        }
        unscaled = true;
        return allFinite;
    }

    /**
     * Adjusts the scale after the step (taken or skipped), with {@code _amp_update_scale_}: on a
     * non-finite step scale *= backoff and the tracker resets; otherwise the tracker counts, and on
     * reaching the growth interval scale *= growth (kept only if finite) and the tracker resets. No
     * host sync. No-op when disabled.
     *
     * @throws IllegalStateException when {@link #unscaleAndCheck} was not called since the last update
     */
    public void update() {
        if (!enabled) return;
        if (!unscaled) throw new IllegalStateException("No inf checks were recorded prior to update(): call unscaleAndCheck() first");
        try (PointerScope scope = new PointerScope()) {
            updateOp.callBoxed(new IValueVector(new IValue(scaleT), new IValue(growthTracker), new IValue(foundInf),
                    new IValue(growthFactor), new IValue(backoffFactor), new IValue((long) growthInterval)));
        }
        unscaled = false;
    }

    /** The current scale (host sync); 1.0 when disabled. */
    public double scaleValue() {
        if (!enabled) return 1.0;
        try (PointerScope scope = new PointerScope()) {
            return scaleT.item_double();
        }
    }

    /** Consecutive finite steps counted toward the next growth (host sync); 0 when disabled. */
    public long growthTrackerValue() {
        if (!enabled) return 0;
        try (PointerScope scope = new PointerScope()) {
            return growthTracker.item_long();
        }
    }

    /**
     * {@code {"scale": 0-d float32, "growth_tracker": 0-d int32}}, the live tensors (copy them if
     * they must not change); empty when disabled, as GradScaler's state_dict.
     */
    public Map<String, Tensor> state() {
        Map<String, Tensor> out = new LinkedHashMap<>();
        if (!enabled) return out;
        out.put("scale", scaleT);
        out.put("growth_tracker", growthTracker);
        return out;
    }

    /** Restores {@link #state()} (values are copied; dtype and device converted). Ignored when disabled. */
    public void load(Map<String, Tensor> state) {
        if (!enabled) return;
        Tensor s = state.get("scale"), g = state.get("growth_tracker");
        if (s == null || g == null) throw new IllegalArgumentException("loss scaler state needs 'scale' and 'growth_tracker', got " + state.keySet());
        if (s.numel() != 1 || g.numel() != 1) throw new IllegalArgumentException("loss scaler state tensors must have one element each");
        try (PointerScope scope = new PointerScope(); NoGradGuard ng = new NoGradGuard()) {
            scaleT.copy_(s.reshape(new long[0]));
            growthTracker.copy_(g.reshape(new long[0]));
        }
        unscaled = false;
    }

    @Override
    public String toString() {
        return "LossScaler{" + (enabled ? "scale=" + scaleValue() + ", growth=" + growthFactor + ", backoff=" + backoffFactor
                + ", interval=" + growthInterval + ", init=" + initScale : "disabled") + "}";
    }
}
