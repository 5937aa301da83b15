package dev.jtune.bench.optim;

import dev.jtune.bench.Shapes;
import dev.jtune.model.ModelConfig;
import dev.jtune.model.ModelInit;
import dev.jtune.peft.Lora;
import dev.jtune.peft.LoraSpec;
import dev.jtune.train.optim.AdamW;
import dev.jtune.util.NativeRuntime;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.Device;
import org.bytedeco.pytorch.NoGradGuard;
import org.bytedeco.pytorch.Tensor;
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

import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;

/**
 * The CUDA issue's optimizer question: jtune's per-tensor AdamW loop against ATen's {@code _fused_adamw_}
 * (through the dispatcher), one optimizer step over a real model's trainable tensors with gradients already
 * in place (the step alone: no forward, no backward). Sets: {@code tiny-full} (the demo model, all 21 tensors,
 * fp32), {@code llama3.2-1b-lora} and {@code llama3-8b-lora} (LoRA r=16 on all linear layers: 224 and 448
 * fp32 adapter tensors). On CUDA each loop step launches ~6 kernels per tensor; the fused op launches a few
 * multi-tensor kernels per group.
 *
 * <pre>java -jar bench/target/benchmarks.jar AdamWBenchmark -f 1 -wi 3 -i 5                # CPU
 * java -cp "$CLASSPATH:bench/target/benchmarks.jar" org.openjdk.jmh.Main AdamWBenchmark -p device=cuda   # GPU machine</pre>
 */
@State(Scope.Thread)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MICROSECONDS)
@Warmup(iterations = 3, time = 1)
@Measurement(iterations = 5, time = 1)
@Fork(1)
public class AdamWBenchmark {
    @Param({"LOOP", "FUSED"})
    public String impl;

    @Param({"tiny-full", "llama3.2-1b-lora", "llama3-8b-lora"})
    public String set;

    @Param("cpu")
    public String device;

    private AdamW optimizer;
    private boolean cuda;

    @Setup(Level.Trial)
    public void setup() {
        NativeRuntime.configureEnvironment();
        NativeRuntime.configureThreads();
        Device dev = new Device(device);
        cuda = dev.is_cuda();
        String shape = set.substring(0, set.lastIndexOf('-'));
        ModelConfig config = Shapes.config(shape, null);
        Map<String, Tensor> params;
        try (PointerScope scope = new PointerScope()) {
            params = set.endsWith("-lora")
                    ? Lora.tensors(Lora.create(config, new LoraSpec(16, 32, 0, List.of("all-linear"), false, false), 1, dev, "bench"))
                    : ModelInit.randomParameters(config, 1, ScalarType.Float, dev);
            try (NoGradGuard ng = new NoGradGuard()) {
                for (Tensor p : params.values()) {
                    p.requires_grad_(true);
                    p.mutable_grad().put(torch.randn_like(p).mul(new org.bytedeco.pytorch.Scalar(1e-3)));
                    p.retainReference();
                }
            }
        }
        optimizer = new AdamW(params, n -> true, 0.01, 0.9, 0.999, 1e-8).implementation(AdamW.Impl.valueOf(impl));
        long n = params.values().stream().mapToLong(Tensor::numel).sum();
        System.out.printf("%n[AdamWBenchmark] %s: %d tensors, %,d elements, %s on %s%n", set, params.size(), n, impl, device);
    }

    @Benchmark
    public void step() {
        optimizer.step(1e-5);
        if (cuda) torch.cuda_synchronize();
    }
}
