package dev.jtune.infer;

import dev.jtune.kernels.CpuLinear;
import dev.jtune.model.CausalLM;
import dev.jtune.model.KvCache;
import dev.jtune.model.ModelConfig;
import dev.jtune.model.ModelInit;
import dev.jtune.model.ModelLoader;
import dev.jtune.util.Tensors;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.Device;
import org.bytedeco.pytorch.NoGradGuard;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch;
import org.bytedeco.pytorch.global.torch.ScalarType;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.nio.file.Path;
import java.util.Arrays;
import java.util.Set;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The decode path (KV cache, one token per forward, split matrix-vector linears) must give what one full forward over
 * the whole text gives: the logits of every generated position within float32 tolerance, and the same greedy tokens.
 * The models are big enough ("small" preset, vocab 1000) that every projection and the output head take the split
 * path ({@link CpuLinear}), which a one-token forward must use.
 */
class DecodeMatchesForwardTest {
    @ParameterizedTest
    @ValueSource(strings = {"llama", "qwen2", "gpt2"})
    void decodedLogitsAndTokensEqualTheFullForward(String arch) {
        ModelConfig config = ModelConfig.parse(ModelInit.presetConfig(arch, "small", 1000, null, null), Path.of(arch + "/config.json"));
        try (CausalLM model = ModelLoader.create(config, ModelInit.randomParameters(config, 3, ScalarType.Float),
                ScalarType.Float, new Device("cpu"), null)) {
            long[] prompt = {5, 17, 256, 999, 3, 42, 7};
            int steps = 12;
            long[] generated = new TextGenerator(model).generate(prompt, new TextGenerator.Settings(steps, 0, 1, 0), Set.of(), null);
            assertEquals(steps, generated.length);
            long[] text = new long[prompt.length + steps];
            System.arraycopy(prompt, 0, text, 0, prompt.length);
            System.arraycopy(generated, 0, text, prompt.length, steps);
            try (NoGradGuard ng = new NoGradGuard(); PointerScope scope = new PointerScope();
                 KvCache cache = model.newCache(1, text.length)) {
                Tensor ids = Tensors.longs(new long[][] {text});
                Tensor full = model.forward(ids.narrow(1, 0, text.length - 1));                          // (1, T-1, V)
                Tensor stepwise = model.forward(ids.narrow(1, 0, prompt.length), null, null, cache)
                        .select(1, prompt.length - 1).unsqueeze(1);                                     // (1, 1, V)
                assertTrue(CpuLinear.applies(torch.zeros(1, config.hiddenSize()), model.outputWeight()),
                        "the one-token step must take the split path");
                for (int i = prompt.length; i < text.length - 1; i++) {
                    Tensor next = model.forward(ids.narrow(1, i, 1), null, null, cache);                  // (1, 1, V)
                    stepwise = torch.cat(new org.bytedeco.pytorch.TensorArrayRef(new org.bytedeco.pytorch.TensorVector(stepwise, next)), 1);
                }
                Tensor want = full.narrow(1, prompt.length - 1, steps);                                  // (1, steps, V)
                double worst = stepwise.sub(want).abs().max().item_double();
                double scale = want.abs().max().item_double();
                assertTrue(worst <= 1e-4 * Math.max(1, scale), arch + ": decode logits differ from the full forward by " + worst + " (max |logit| " + scale + ")");
                long[] fullGreedy = Tensors.toLongs(torch.argmax(want.squeeze(0), new org.bytedeco.pytorch.LongOptional(-1), false));
                assertArrayEquals(generated, fullGreedy, arch + ": greedy tokens of the full forward " + Arrays.toString(fullGreedy));
            }
        }
    }
}
