package dev.jtune.train.optim;

import dev.jtune.util.AtenOps;
import dev.jtune.util.Tensors;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.IValue;
import org.bytedeco.pytorch.IValueVector;
import org.bytedeco.pytorch.NoGradGuard;
import org.bytedeco.pytorch.Scalar;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.TensorVector;
import org.bytedeco.pytorch.global.torch;
import org.bytedeco.pytorch.global.torch.ScalarType;

import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.function.Predicate;

/**
 * AdamW with decoupled weight decay, exactly as torch.optim.AdamW (amsgrad off) computes it:
 * <pre>
 *   p  ← p · (1 − lr·wd)                 (only parameters in the decay group)
 *   m  ← β1·m + (1 − β1)·g
 *   v  ← β2·v + (1 − β2)·g²
 *   p  ← p − lr/(1 − β1^t) · m / (√v / √(1 − β2^t) + ε)
 * </pre>
 * Driven from here rather than by LibTorch's C++ AdamW class so that the state (m, v, t) is plain named
 * tensors: checkpoints save it as safetensors and a resumed run continues bit for bit. The arithmetic is
 * ATen's fused kernel by default ({@link Impl#FUSED}); the per-tensor loop is the readable reference.
 */
public final class AdamW {
    /**
     * How a step runs. LOOP: a handful of LibTorch ops per tensor (the reference). FUSED: ATen's own
     * {@code aten::_fused_adamw_} (what torch.optim.AdamW(fused=True) calls), reached through the dispatcher,
     * one call per group of tensors of the same device, dtype and decay; multi-tensor kernels on CUDA. Both
     * compute the formula above; on the CPU they agree to a few float32 ulps (AdamWTest).
     */
    public enum Impl { LOOP, FUSED }

    private final Map<String, Tensor> params;
    private final Map<String, Boolean> decays;
    private final Map<String, Tensor> expAvg = new LinkedHashMap<>();
    private final Map<String, Tensor> expAvgSq = new LinkedHashMap<>();
    private final double weightDecay, beta1, beta2, eps;
    private Impl impl = Impl.FUSED;   // measured 6-17x faster per step on the CPU (bench/RESULTS.md, AdamWBenchmark)
    private long step;
    /** FUSED: the step count as 0-d float32 tensors, one per device (the op reads t from a tensor). */
    private final Map<String, Tensor> stepTensors = new LinkedHashMap<>();

    /**
     * @param params  trainable parameters by name (leaf tensors that require grad)
     * @param decayed which names get weight decay (full fine-tuning: every weight but biases and norm weights, embeddings
     *                included, as transformers decides; see Trainable.fullDecay)
     */
    public AdamW(Map<String, Tensor> params, Predicate<String> decayed, double weightDecay, double beta1, double beta2, double eps) {
        this(params, decayed, n -> true, weightDecay, beta1, beta2, eps);
    }

    /**
     * As above, keeping state for and updating only the parameters {@code owned} names: one rank's shard under ZeRO
     * stage 1 (dev.jtune.distributed.ZeroSharding broadcasts the others from their owners after each step). Gradients of the
     * others are still zeroed by {@link #zeroGrad}.
     */
    public AdamW(Map<String, Tensor> params, Predicate<String> decayed, Predicate<String> owned, double weightDecay, double beta1,
                 double beta2, double eps) {
        this.params = Collections.unmodifiableMap(new LinkedHashMap<>(params));
        this.decays = new LinkedHashMap<>();
        this.weightDecay = weightDecay;
        this.beta1 = beta1;
        this.beta2 = beta2;
        this.eps = eps;
        for (Map.Entry<String, Tensor> e : params.entrySet()) {
            decays.put(e.getKey(), decayed.test(e.getKey()));
            if (!owned.test(e.getKey())) continue;
            Tensor m = torch.zeros_like(e.getValue());
            Tensor v = torch.zeros_like(e.getValue());
            m.retainReference();
            v.retainReference();
            expAvg.put(e.getKey(), m);
            expAvgSq.put(e.getKey(), v);
        }
    }

    /** Chooses how steps run (default FUSED); the state is the same either way, so it may change between steps. */
    public AdamW implementation(Impl impl) {
        this.impl = impl;
        return this;
    }

    public Impl implementation() {
        return impl;
    }

    /** One update with learning rate {@code lr}; parameters without a gradient are left alone, as in PyTorch. */
    public void step(double lr) {
        if (impl == Impl.FUSED) {
            fusedStep(lr);
            return;
        }
        step++;
        double bc1 = 1 - Math.pow(beta1, step);
        double bc2Sqrt = Math.sqrt(1 - Math.pow(beta2, step));
        try (NoGradGuard ng = new NoGradGuard()) {
            for (Map.Entry<String, Tensor> e : params.entrySet()) {
                if (!expAvg.containsKey(e.getKey())) continue;   // another rank's shard
                Tensor p = e.getValue();
                Tensor g = Tensors.gradOf(p);
                if (g == null) continue;
                if (weightDecay != 0 && decays.get(e.getKey())) p.mul_(new Scalar(1 - lr * weightDecay));
                Tensor m = expAvg.get(e.getKey());
                Tensor v = expAvgSq.get(e.getKey());
                m.lerp_(g, new Scalar(1 - beta1));
                v.mul_(new Scalar(beta2)).addcmul_(g, g, new Scalar(1 - beta2));
                Tensor denom = v.sqrt().div_(new Scalar(bc2Sqrt)).add_(new Scalar(eps));
                p.addcdiv_(m, denom, new Scalar(-lr / bc1));
            }
        }
    }

    /** A group of the fused step: the fused kernels take one device and dtype per call, and one weight decay. */
    private record Group(String device, ScalarType dtype, boolean decay) {}

    private void fusedStep(double lr) {
        step++;
        Map<Group, List<String>> groups = new LinkedHashMap<>();
        for (Map.Entry<String, Tensor> e : params.entrySet()) {
            Tensor p = e.getValue();
            if (!expAvg.containsKey(e.getKey()) || Tensors.gradOf(p) == null) continue;   // another rank's shard, or no gradient
            Group key = new Group(p.device().str().getString(), p.scalar_type().intern(), weightDecay != 0 && decays.get(e.getKey()));
            groups.computeIfAbsent(key, k -> new ArrayList<>()).add(e.getKey());
        }
        try (NoGradGuard ng = new NoGradGuard(); PointerScope scope = new PointerScope()) {
            for (Map.Entry<Group, List<String>> group : groups.entrySet()) {
                List<String> names = group.getValue();
                Tensor t = stepTensors.computeIfAbsent(group.getKey().device(), d -> {
                    Tensor z = torch.zeros(new long[] {}, Tensors.options(ScalarType.Float, params.get(names.get(0)).device()));
                    z.retainReference();
                    return z;
                });
                t.fill_(new Scalar((double) step));
                List<Tensor> ps = new ArrayList<>(), gs = new ArrayList<>(), ms = new ArrayList<>(), vs = new ArrayList<>(), steps = new ArrayList<>();
                for (String n : names) {
                    ps.add(params.get(n));
                    gs.add(params.get(n).grad());
                    ms.add(expAvg.get(n));
                    vs.add(expAvgSq.get(n));
                    steps.add(t);   // every tensor reads the same step count
                }
                // _fused_adamw_(params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, state_steps, lr, beta1, beta2,
                //               weight_decay, eps, amsgrad, maximize, grad_scale=None, found_inf=None)
                AtenOps.op("aten::_fused_adamw_", "").callBoxed(new IValueVector(AtenOps.tensorList(ps), AtenOps.tensorList(gs),
                        AtenOps.tensorList(ms), AtenOps.tensorList(vs), AtenOps.tensorList(List.of()), AtenOps.tensorList(steps),
                        new IValue(lr), new IValue(beta1), new IValue(beta2), new IValue(group.getKey().decay() ? weightDecay : 0.0),
                        new IValue(eps), new IValue(false), new IValue(false), new IValue(), new IValue()));
            }
        }
    }

    private static List<Tensor> grads(Iterable<Tensor> params) {
        List<Tensor> out = new ArrayList<>();
        for (Tensor p : params) {
            Tensor g = Tensors.gradOf(p);
            if (g != null) out.add(g);
        }
        return out;
    }

    /** Zeroes every gradient in place (one multi-tensor call: {@code aten::_foreach_zero_}). */
    public void zeroGrad() {
        List<Tensor> grads = grads(params.values());
        if (grads.isEmpty()) return;
        try (NoGradGuard ng = new NoGradGuard(); PointerScope scope = new PointerScope()) {
            AtenOps.op("aten::_foreach_zero_", "").callBoxed(new IValueVector(AtenOps.tensorList(grads)));
        }
    }

    public double beta1() {
        return beta1;
    }

    public double beta2() {
        return beta2;
    }

    public double eps() {
        return eps;
    }

    public double weightDecay() {
        return weightDecay;
    }

    public long stepCount() {
        return step;
    }

    public Map<String, Tensor> parameters() {
        return params;
    }

    public List<String> decayedNames() {
        List<String> out = new ArrayList<>();
        decays.forEach((k, v) -> {
            if (v) out.add(k);
        });
        return out;
    }

    /** Whether this optimizer keeps state for (and updates) {@code name}: all parameters, unless it is one rank's ZeRO shard. */
    public boolean owns(String name) {
        return expAvg.containsKey(name);
    }

    /** Bytes of the state this optimizer holds (the two moments of the parameters it owns). */
    public long stateBytes() {
        long b = 0;
        for (Tensor m : expAvg.values()) b += 2 * m.numel() * Tensors.elementSize(m.scalar_type());
        return b;
    }

    /** The keys of {@link #state()} for every parameter, owned or not, in the order a checkpoint lists them. */
    public List<String> allStateKeys() {
        List<String> out = new ArrayList<>();
        for (String n : params.keySet()) out.add("exp_avg." + n);
        for (String n : params.keySet()) out.add("exp_avg_sq." + n);
        return out;
    }

    /** The parameter a key of {@link #state()} belongs to. */
    public static String parameterOf(String stateKey) {
        if (stateKey.startsWith("exp_avg_sq.")) return stateKey.substring("exp_avg_sq.".length());
        if (stateKey.startsWith("exp_avg.")) return stateKey.substring("exp_avg.".length());
        throw new IllegalArgumentException("not an AdamW state key: " + stateKey);
    }

    /** Optimizer state as named tensors: {@code exp_avg.NAME}, {@code exp_avg_sq.NAME} (of the owned parameters). */
    public Map<String, Tensor> state() {
        Map<String, Tensor> out = new LinkedHashMap<>();
        expAvg.forEach((k, v) -> out.put("exp_avg." + k, v));
        expAvgSq.forEach((k, v) -> out.put("exp_avg_sq." + k, v));
        return out;
    }

    /**
     * Restores {@link #state()} and the step count (shapes must match). {@code state} may hold more (a checkpoint holds
     * every parameter's): a ZeRO shard takes its own, whatever the world size that wrote it.
     */
    public void load(Map<String, Tensor> state, long stepCount) {
        try (NoGradGuard ng = new NoGradGuard()) {
            expAvg.forEach((k, v) -> v.copy_(require(state, "exp_avg." + k)));
            expAvgSq.forEach((k, v) -> v.copy_(require(state, "exp_avg_sq." + k)));
        }
        this.step = stepCount;
    }

    private static Tensor require(Map<String, Tensor> state, String key) {
        Tensor t = state.get(key);
        if (t == null) throw new IllegalArgumentException("optimizer state has no " + key);
        return t;
    }

    /**
     * Scales all gradients so that their global L2 norm is at most {@code maxNorm} (when > 0), as
     * torch.nn.utils.clip_grad_norm_ does, and returns the norm before clipping. One host sync.
     */
    public static double clipGradNorm(Iterable<Tensor> params, double maxNorm) {
        List<Tensor> grads = grads(params);
        if (grads.isEmpty()) return 0;
        // multi-tensor ops (as torch.nn.utils.clip_grad_norm_(foreach=True)): a few kernel launches for all
        // tensors instead of three or four per tensor (448 tensors for LoRA on an 8B model)
        try (NoGradGuard ng = new NoGradGuard(); PointerScope scope = new PointerScope()) {
            IValue list = AtenOps.tensorList(grads);
            IValueVector stack = new IValueVector(list, new IValue(2.0), new IValue());
            AtenOps.op("aten::_foreach_norm", "Scalar").callBoxed(stack);   // (grads, ord 2, dtype None)
            TensorVector norms = stack.get(0).toTensorVector();             // one 0-d norm per gradient
            TensorVector asFloat = new TensorVector();
            for (long i = 0; i < norms.size(); i++) asFloat.push_back(norms.get(i).to(ScalarType.Float));
            double norm = torch.stack(asFloat).pow(new Scalar(2)).sum().sqrt().item_double();   // host sync
            if (maxNorm > 0) {
                double coef = maxNorm / (norm + 1e-6);
                if (coef < 1) AtenOps.op("aten::_foreach_mul_", "Scalar").callBoxed(new IValueVector(list, new IValue(coef)));
            }
            return norm;
        }
    }
}
