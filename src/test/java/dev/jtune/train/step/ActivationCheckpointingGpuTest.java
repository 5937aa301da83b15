package dev.jtune.train.step;

import dev.jtune.config.Precision;
import dev.jtune.data.Batch;
import dev.jtune.kernels.Ops;
import dev.jtune.model.CausalLM;
import dev.jtune.util.Devices;
import org.bytedeco.pytorch.Device;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;

/**
 * On CUDA, checkpointing with {@code offload} (saved block inputs in pinned host memory) gives the loss and gradients
 * of the plain step, with the CUDA kernels where they apply; the same dropout masks (CUDA generator state restored).
 * Tolerances allow for CUDA's non-deterministic reductions (atomics in the embedding's backward).
 */
@Tag("gpu")
class ActivationCheckpointingGpuTest {
    @ParameterizedTest(name = "{0} lora={1} {2}")
    @CsvSource({"llama-tiny, true, BF16", "qwen3-tiny, false, FP32", "gpt2-tiny, true, FP32"})
    void offloadedCheckpointingEqualsThePlainStep(String name, boolean lora, Precision precision) {
        dev.jtune.GpuTests.assumeCuda();
        ActivationCheckpointingTest.Setup s = ActivationCheckpointingTest.setup(name, lora, Ops.AUTO, new Device("cuda"));
        try (CausalLM m = s.model()) {
            Batch batch = ActivationCheckpointingTest.packedBatches(9, 3).get(0);
            double[] plainLoss = new double[2], ckptLoss = new double[2];
            Map<String, float[]> plain = ActivationCheckpointingTest.lossAndGradients(s, batch, precision, false, plainLoss);
            Map<String, float[]> ckpt = ActivationCheckpointingTest.lossAndGradients(s, batch, precision, true, ckptLoss);
            double rtol = precision == Precision.BF16 ? 2e-2 : 1e-5, atol = precision == Precision.BF16 ? 1e-3 : 1e-6;
            assertEquals(plainLoss[0], ckptLoss[0], rtol * Math.abs(plainLoss[0]), "loss");
            assertEquals(plainLoss[1], ckptLoss[1], 0.0, "the generator ends where the plain step leaves it");
            for (String k : plain.keySet()) {
                float[] a = plain.get(k), b = ckpt.get(k);
                for (int i = 0; i < a.length; i++) {
                    assertEquals(a[i], b[i], atol + rtol * Math.abs(a[i]), k + "[" + i + "]");
                }
            }
        }
    }
}
