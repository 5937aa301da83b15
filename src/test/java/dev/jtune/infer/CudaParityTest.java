package dev.jtune.infer;

import dev.jtune.model.CausalLM;
import dev.jtune.model.ModelLoader;
import dev.jtune.util.Devices;
import org.bytedeco.pytorch.Device;
import org.bytedeco.pytorch.global.torch.ScalarType;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.assertEquals;

/** Perplexity on CUDA equals CPU: fp32 within 1e-4 mean NLL, bf16 within 2e-2. Skips without CUDA. */
@Tag("gpu")
class CudaParityTest {
    static final long[] IDS = {30, 116, 107, 121, 66, 60, 108, 81, 51, 111, 96, 19, 5, 17, 99, 3, 42, 64, 8, 120, 77};

    @ParameterizedTest
    @ValueSource(strings = {"llama-tiny", "mistral-tiny", "qwen2-tiny", "qwen3-tiny", "gpt2-tiny"})
    void perplexityOnCudaMatchesCpu(String name) {
        dev.jtune.GpuTests.assumeCuda();
        Path dir = Path.of("src/test/resources/models", name);
        double cpu;
        try (CausalLM m = ModelLoader.load(dir, ScalarType.Float, new Device("cpu"))) {
            cpu = Perplexity.of(m, IDS, IDS.length, IDS.length, null).meanNll();
        }
        try (CausalLM m = ModelLoader.load(dir, ScalarType.Float, new Device("cuda"))) {
            assertEquals(cpu, Perplexity.of(m, IDS, IDS.length, IDS.length, null).meanNll(), 1e-4, name + " fp32");
        }
        try (CausalLM m = ModelLoader.load(dir, ScalarType.BFloat16, new Device("cuda"))) {
            assertEquals(cpu, Perplexity.of(m, IDS, IDS.length, IDS.length, null).meanNll(), 2e-2, name + " bf16");
        }
    }
}
