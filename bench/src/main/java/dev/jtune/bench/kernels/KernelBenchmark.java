package dev.jtune.bench.kernels;

import dev.jtune.kernels.KernelLibrary;
import dev.jtune.kernels.KernelMode;
import dev.jtune.kernels.Ops;
import dev.jtune.train.step.CausalLmLoss;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.BoolOptional;
import org.bytedeco.pytorch.Device;
import org.bytedeco.pytorch.DeviceOptional;
import org.bytedeco.pytorch.Scalar;
import org.bytedeco.pytorch.ScalarTypeOptional;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.TensorArrayRefOptional;
import org.bytedeco.pytorch.TensorOptions;
import org.bytedeco.pytorch.global.torch;
import org.bytedeco.pytorch.global.torch.ScalarType;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.Warmup;

import java.util.concurrent.TimeUnit;

/**
 * Each fused op through {@link Ops}, CUDA kernel ({@code kernels=auto}) against the LibTorch
 * composition ({@code kernels=off}), forward + backward, bf16 by default, on the GPU machine:
 *
 * <pre>java -cp "$CLASSPATH" org.openjdk.jmh.Main KernelBenchmark -f 1 -wi 3 -i 5 -p kernels=auto,off</pre>
 *
 * Shapes: Llama-3-8B at 8192 tokens (hidden 4096, intermediate 14336, 32 heads of 128, vocab 128256).
 * Every invocation ends with a device synchronisation. The trial setup prints a copy-bandwidth
 * reference (a bf16 clone of the RMSNorm input) and the path Ops reports, so bandwidth targets
 * (80% of copy) can be judged from the same run, and the peak CUDA memory (caching-allocator
 * statistics, {@code torch.cuda.max_memory_allocated}) of one cross-entropy forward + backward on
 * the op layer (chunked as the trainer chunks) and on LibTorch's full-logits
 * {@code log_softmax + nll_loss}, whose time is the benchmark {@code crossEntropyFullLogitsLibTorch}.
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MICROSECONDS)
@Fork(1)
@Warmup(iterations = 3, time = 2)
@Measurement(iterations = 5, time = 2)
public class KernelBenchmark {
    @Param({"auto", "off"})
    public String kernels;

    @Param({"bfloat16"})
    public String dtype;

    @Param("8192")
    public int tokens;

    @Param("128256")
    public int vocab;

    private Ops ops;
    private Tensor x, w, gate, up, q, cos, sin, hidden, head, targets, gx, gg, gq;

    @Setup(Level.Trial)
    public void setup() {
        if (!KernelLibrary.available()) System.out.println("kernels unavailable: " + KernelLibrary.reason());
        ops = Ops.of(KernelMode.parse(kernels));
        ScalarType dt = dtype.equals("float32") ? ScalarType.Float : ScalarType.BFloat16;
        TensorOptions o = new TensorOptions().dtype(new ScalarTypeOptional(dt)).device(new DeviceOptional(new Device("cuda")));
        x = leaf(torch.randn(new long[] {tokens, 4096}, o));
        w = leaf(torch.randn(new long[] {4096}, o));
        gate = leaf(torch.randn(new long[] {tokens, 14336}, o));
        up = leaf(torch.randn(new long[] {tokens, 14336}, o));
        long b = Math.max(1, tokens / 4096), t = tokens / b;
        q = torch.randn(new long[] {b, t, 32, 128}, o);
        cos = torch.randn(new long[] {b, 1, t, 128}, o);
        sin = torch.randn(new long[] {b, 1, t, 128}, o);
        hidden = leaf(torch.randn(new long[] {tokens, 4096}, o));
        head = torch.randn(new long[] {vocab, 4096}, o).mul(new Scalar(0.02));   // frozen head (LoRA)
        targets = torch.randint(vocab, new long[] {tokens},
                new TensorOptions().dtype(new ScalarTypeOptional(ScalarType.Long)).device(new DeviceOptional(new Device("cuda"))));
        gx = torch.randn(new long[] {tokens, 4096}, o);
        gg = torch.randn(new long[] {tokens, 14336}, o);
        gq = torch.randn(new long[] {b, 32, t, 128}, o);
        for (Tensor t0 : new Tensor[] {x, w, gate, up, q, cos, sin, hidden, head, targets, gx, gg, gq}) t0.retainReference();
        // copy bandwidth reference on the RMSNorm input (read + write)
        torch.cuda_synchronize();
        long t0 = System.nanoTime();
        int n = 20;
        for (int i = 0; i < n; i++) try (PointerScope s = new PointerScope()) { x.clone(); }
        torch.cuda_synchronize();
        double sec = (System.nanoTime() - t0) / 1e9 / n;
        System.out.printf("%n[KernelBenchmark] copy bandwidth %.0f GB/s (bf16 clone of %d x 4096); kernels=%s%n%s%n",
                2.0 * x.nbytes() / sec / 1e9, tokens, kernels, ops.describe(true));
        long opLayer = peakBytes(this::crossEntropyForwardBackward), full = peakBytes(this::crossEntropyFullLogitsLibTorch);
        System.out.printf("[KernelBenchmark] cross-entropy peak memory above the inputs, %d tokens, vocab %d, %s, chunk %d rows: "
                        + "op layer (kernels=%s) %.1f MiB, LibTorch full logits (log_softmax + nll_loss) %.1f MiB, ratio %.3f%n",
                tokens, vocab, dtype, chunk(), kernels, opLayer / 1048576.0, full / 1048576.0, (double) opLayer / full);
    }

    /** Peak allocated CUDA bytes during {@code r} beyond what was allocated before it (caching-allocator statistics). */
    private static long peakBytes(Runnable r) {
        torch.cuda_synchronize();
        byte dev = 0;
        long before = torch.getDeviceStats(dev).allocated_bytes().current();
        torch.resetPeakStats(dev);
        r.run();
        torch.cuda_synchronize();
        return torch.getDeviceStats(dev).allocated_bytes().peak() - before;
    }

    private long chunk() {
        return CausalLmLoss.chunkRows(tokens, vocab, 4096, true);
    }

    private static Tensor leaf(Tensor t) {
        return t.set_requires_grad(true);
    }

    private static void backward(Tensor out, Tensor grad) {
        out.backward(grad, new BoolOptional(), false, new TensorArrayRefOptional());
    }

    @Benchmark
    public void rmsNormForwardBackward() {
        try (PointerScope s = new PointerScope()) {
            backward(ops.rmsNorm(x, w, 1e-5), gx);
            x.grad().zero_();
            w.grad().zero_();
            torch.cuda_synchronize();
        }
    }

    @Benchmark
    public void swigluForwardBackward() {
        try (PointerScope s = new PointerScope()) {
            backward(ops.swiglu(gate, up), gg);
            gate.grad().zero_();
            up.grad().zero_();
            torch.cuda_synchronize();
        }
    }

    @Benchmark
    public void ropeForwardBackward() {
        try (PointerScope s = new PointerScope()) {
            Tensor leafQ = q.detach().set_requires_grad(true);
            Tensor view = leafQ.mul(new Scalar(1)).transpose(1, 2);   // a non-leaf (B, H, T, hd), as in the model
            backward(ops.rope(view, cos, sin), gq);
            torch.cuda_synchronize();
        }
    }

    /** The op layer, chunked as the trainer chunks on CUDA (CausalLmLoss.chunkRows). */
    @Benchmark
    public void crossEntropyForwardBackward() {
        try (PointerScope s = new PointerScope()) {
            ops.crossEntropySum(hidden, head, targets, chunk()).backward();
            hidden.grad().zero_();
            torch.cuda_synchronize();
        }
    }

    /** The reference of the memory target: full (tokens x vocab) logits, float32 log_softmax, nll_loss (sum). */
    @Benchmark
    public void crossEntropyFullLogitsLibTorch() {
        try (PointerScope s = new PointerScope()) {
            Tensor logp = torch.log_softmax(torch.linear(hidden, head).to(ScalarType.Float), -1);
            torch.nll_loss(logp, targets, new org.bytedeco.pytorch.TensorOptional(), 2, -100).backward();
            hidden.grad().zero_();
            torch.cuda_synchronize();
        }
    }
}
