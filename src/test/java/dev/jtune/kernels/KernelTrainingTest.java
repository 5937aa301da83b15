package dev.jtune.kernels;

import dev.jtune.config.Precision;
import dev.jtune.bench.BenchRunner;
import dev.jtune.bench.Shapes;
import dev.jtune.data.Batch;
import dev.jtune.model.ModelConfig;
import dev.jtune.peft.LoraSpec;
import dev.jtune.train.step.Autocast;
import dev.jtune.train.step.TrainStep;
import org.bytedeco.pytorch.Device;
import org.bytedeco.pytorch.global.torch;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

import java.util.Arrays;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * A short LoRA training (the bench's tiny Llama shape, random weights, one repeated batch) with the op
 * layer on its kernel paths and with kernels off gives the same loss curve. On the CPU the kernel paths
 * run {@link EmulatedKernels}; {@code KernelGpuTest} runs the same curve with the CUDA kernels in bf16.
 */
class KernelTrainingTest {
    /**
     * Loss per optimizer step; {@code kernels} = false runs with kernels: off, true with kernels: auto (with
     * {@code backend}, or the CUDA kernels when null).
     */
    static double[] lossCurve(Device device, Precision precision, boolean kernels, KernelBackend backend, int steps) {
        Ops ops = kernels ? Ops.withBackend(backend) : Ops.OFF;
        ModelConfig config = Shapes.config("tiny", null);
        List<Batch> batches = BenchRunner.syntheticBatches(config.vocabSize(), 24, 2, 2, 7);
        torch.manual_seed(7);
        double[] losses = new double[steps];
        try (TrainStep step = TrainStep.random(config, device, new LoraSpec(8, 16, 0, List.of("all-linear"), false, true), 7, ops, null,
                TrainStep.Settings.defaults(precision, 0.0, 1.0), dev.jtune.distributed.DistGroup.single())) {
            for (int i = 0; i < steps; i++) losses[i] = step.step(batches, 5e-3).loss();
        }
        return losses;
    }

    /** Same curve step by step within {@code tol} relative, and a curve that learns (the last loss under the first). */
    static void assertSameCurve(double[] off, double[] on, double tol) {
        String both = "off " + Arrays.toString(off) + "\non  " + Arrays.toString(on);
        for (int i = 0; i < off.length; i++) {
            assertTrue(Double.isFinite(on[i]), both);
            assertEquals(off[i], on[i], tol * Math.abs(off[i]), "step " + (i + 1) + "\n" + both);
        }
        // random tokens over a 50k vocabulary: memorising one batch moves the loss by a few percent in a few steps
        assertTrue(off[off.length - 1] < 0.97 * off[0], "the run learns: " + both);
    }

    @ParameterizedTest
    @EnumSource(value = Precision.class, names = {"FP32", "BF16"})
    void loraLossCurveWithKernelPathsEqualsKernelsOff(Precision precision) {
        Device cpu = new Device("cpu");
        double[] off = lossCurve(cpu, precision, false, null, 8);
        double[] on = lossCurve(cpu, precision, true, EmulatedKernels.INSTANCE, 8);
        assertSameCurve(off, on, precision == Precision.FP32 ? 1e-5 : 1e-3);
    }
}
