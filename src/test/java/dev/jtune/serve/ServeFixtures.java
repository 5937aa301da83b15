package dev.jtune.serve;

import dev.jtune.cli.CliTest;
import dev.jtune.model.CausalLM;
import dev.jtune.peft.AdapterLoader;
import dev.jtune.peft.Lora;
import dev.jtune.peft.LoraAdapter;
import dev.jtune.peft.LoraSpec;
import dev.jtune.peft.PeftAdapter;
import org.bytedeco.pytorch.Device;
import org.bytedeco.pytorch.global.torch.ScalarType;

import java.nio.file.Path;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;

/** Tiny models with a real tokenizer (GPT-2's) and LoRA adapters on them, for the serving tests. */
final class ServeFixtures {
    private ServeFixtures() {}

    /** `jtune init-model --arch ARCH` (2 layers, hidden 64, GPT-2's tokenizer) into {@code dir}. */
    static Path model(String arch, Path dir, long seed) {
        CliTest.Run r = CliTest.run("init-model", "--arch", arch, "--tokenizer", "configs/tokenizers/gpt2", "--out", dir.toString(), "--seed", "" + seed);
        assertEquals(0, r.code(), r.err());
        return dir;
    }

    /** A PEFT adapter for {@code model} on {@code targets} with random B (so it changes the answers), saved in {@code dir}. */
    static Path adapter(Path model, List<String> targets, long seed, Path dir) {
        try (CausalLM base = AdapterLoader.load(model, null, ScalarType.Float, new Device("cpu"))) {
            LoraSpec spec = new LoraSpec(4, 16, 0, targets, false, false);
            var a = Lora.create(base.config(), spec, seed, new Device("cpu"), "test");
            PeftAdapter.save(dir, spec, a, base.config(), model.toString());
            a.values().forEach(LoraAdapter::close);
        }
        return dir;
    }
}
