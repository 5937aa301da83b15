package dev.jtune.train;

import dev.jtune.train.step.CausalLmLoss;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.jtune.model.BlockContext;
import dev.jtune.model.CausalLM;
import dev.jtune.model.ModelDropout;
import dev.jtune.model.ModelLoader;
import dev.jtune.util.Tensors;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.Device;
import org.bytedeco.pytorch.GeneratorOptional;
import org.bytedeco.pytorch.MemoryFormatOptional;
import org.bytedeco.pytorch.NoGradGuard;
import org.bytedeco.pytorch.Scalar;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.TensorOptional;
import org.bytedeco.pytorch.global.torch;
import org.bytedeco.pytorch.global.torch.ScalarType;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.io.IOException;
import java.nio.file.Path;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The regularisers that live in the model, each against its definition on the reference checkpoints:
 * NEFTune noise (transformers' magnitude and draw, from src/test/python/regularisation/regularisation_reference.py),
 * the model's own dropout (GPT-2's embd_pdrop element by element; every dropout changes the training loss and never the
 * evaluation loss), and label smoothing through the model's loss against LibTorch's own
 * {@code cross_entropy(label_smoothing)} on the full logits.
 */
class RegularisationTest {
    static final Path MODELS = Path.of("src/test/resources/models");
    static final Device CPU = new Device("cpu");

    static JsonNode reference() throws IOException {
        return new ObjectMapper().readTree(Path.of("src/test/resources/regularisation/reference.json").toFile());
    }

    static Tensor ids(long b, long t, long seed) {
        Random r = new Random(seed);
        long[][] out = new long[(int) b][(int) t];
        for (long[] row : out) for (int i = 0; i < row.length; i++) row[i] = r.nextInt(128);
        return Tensors.longs(out);
    }

    static Tensor embed(CausalLM m, Tensor ids) {
        BlockContext ctx = m.context(ids, null, null, null);
        return m.embed(ids, ctx);
    }

    @Test
    void neftuneMagnitudeIsTransformersFloat32Value() throws IOException {
        for (JsonNode c : reference().get("neftune").get("magnitudes")) {
            double got = CausalLM.neftuneMagnitude(c.get("alpha").asDouble(), c.get("length").asLong(), c.get("dim").asLong());
            assertEquals(c.get("magnitude").asDouble(), got, 0.0, c.toString());
        }
    }

    /**
     * With the seed the reference drew with, the noisy embeddings are the clean ones plus exactly the noise transformers'
     * hook draws (LibTorch's CPU generator and uniform_ give PyTorch's stream), in training mode only.
     */
    @Test
    void neftuneAddsTransformersNoiseInTrainingOnly() throws IOException {
        JsonNode draw = reference().get("neftune").get("draw");
        long b = draw.get("shape").get(0).asLong(), t = draw.get("shape").get(1).asLong(), d = draw.get("shape").get(2).asLong();
        float[] noise = new float[draw.get("noise").size()];
        for (int i = 0; i < noise.length; i++) noise[i] = (float) draw.get("noise").get(i).asDouble();
        try (CausalLM m = ModelLoader.load(MODELS.resolve("llama-tiny"), ScalarType.Float, CPU);
             PointerScope s = new PointerScope(); NoGradGuard ng = new NoGradGuard()) {
            assertEquals(d, m.config().hiddenSize());
            Tensor x = ids(b, t, 1);
            Tensor clean = embed(m, x);
            m.setNeftuneNoiseAlpha(draw.get("alpha").asDouble());
            assertArrayEquals(Tensors.toFloats(clean), Tensors.toFloats(embed(m, x)), 0f, "evaluation: no noise");
            m.setTraining(true);
            torch.manual_seed(draw.get("seed").asLong());
            Tensor noisy = embed(m, x);
            Tensor want = clean.add(Tensors.floats(noise).view(b, t, d));
            assertArrayEquals(Tensors.toFloats(want), Tensors.toFloats(noisy), 0f, "clean + the reference's noise");
            m.setNeftuneNoiseAlpha(0);
            assertArrayEquals(Tensors.toFloats(clean), Tensors.toFloats(embed(m, x)), 0f, "alpha 0: no noise");
        }
    }

    /** The noise's distribution: U(-m, m) with m = alpha / sqrt(T·D), T the padded length (GPT-2: on the token embeddings). */
    @ParameterizedTest
    @ValueSource(strings = {"llama-tiny", "gpt2-tiny"})
    void neftuneNoiseIsUniformWithTheDocumentedScale(String name) {
        try (CausalLM m = ModelLoader.load(MODELS.resolve(name), ScalarType.Float, CPU);
             PointerScope s = new PointerScope(); NoGradGuard ng = new NoGradGuard()) {
            m.setDropout(ModelDropout.NONE);   // GPT-2's embd_pdrop would zero some elements
            long b = 8, t = 48, d = m.config().hiddenSize();
            Tensor x = ids(b, t, 2);
            Tensor clean = embed(m, x);
            m.setNeftuneNoiseAlpha(5);
            m.setTraining(true);
            torch.manual_seed(3);
            double[] n = toDoubles(embed(m, x).sub(clean));
            double mag = 5 / Math.sqrt((double) t * d);
            double sum = 0, sq = 0, max = 0;
            for (double v : n) {
                sum += v;
                sq += v * v;
                max = Math.max(max, Math.abs(v));
            }
            double mean = sum / n.length, var = sq / n.length - mean * mean;
            double sd = mag / Math.sqrt(3);                                   // of U(-m, m)
            assertTrue(max <= mag * (1 + 1e-5), "within the magnitude: " + max + " vs " + mag);
            assertTrue(max > 0.99 * mag, "reaches the magnitude: " + max + " vs " + mag);
            assertTrue(Math.abs(mean) < 5 * sd / Math.sqrt(n.length), "mean 0: " + mean);
            // the variance of a sample variance of U(-m, m): (m^4/5 - m^4/9) / N; 5 sigma
            double varSd = Math.sqrt((Math.pow(mag, 4) / 5 - Math.pow(mag, 4) / 9) / n.length);
            assertEquals(sd * sd, var, 5 * varSd, "variance m^2/3");
        }
    }

    /** GPT-2's embd_pdrop in training: each element is dropped (0) or kept and scaled by 1/(1-p); none in evaluation. */
    @Test
    void gpt2EmbeddingDropoutMatchesItsDefinition() {
        try (CausalLM m = ModelLoader.load(MODELS.resolve("gpt2-tiny"), ScalarType.Float, CPU);
             PointerScope s = new PointerScope(); NoGradGuard ng = new NoGradGuard()) {
            assertEquals(new ModelDropout(0.1, 0.1, 0.1), m.dropout(), "config.json's attn_pdrop, resid_pdrop, embd_pdrop");
            double p = 0.25;
            m.setDropout(new ModelDropout(0, 0, p));
            Tensor x = ids(4, 64, 4);
            double[] clean = toDoubles(embed(m, x));
            assertArrayEquals(clean, toDoubles(embed(m, x)), 0, "evaluation: no dropout");
            m.setTraining(true);
            double[] dropped = toDoubles(embed(m, x));
            int zeros = 0;
            for (int i = 0; i < clean.length; i++) {
                if (dropped[i] == 0 && clean[i] != 0) zeros++;
                else assertEquals((float) (clean[i] / (1 - p)), (float) dropped[i], Math.ulp((float) dropped[i]), "kept element " + i);
            }
            double sd = Math.sqrt(clean.length * p * (1 - p));
            assertEquals(clean.length * p, zeros, 5 * sd, "dropped elements");
        }
    }

    /**
     * Every dropout of both families changes the training-mode loss, reproducibly from the seed, and never the
     * evaluation loss; with dropout off the training-mode loss is the evaluation loss.
     */
    @ParameterizedTest
    @ValueSource(strings = {"llama-tiny:attention", "gpt2-tiny:attention", "gpt2-tiny:residual", "gpt2-tiny:embedding"})
    void dropoutChangesTheTrainingLossOnlyInTraining(String which) {
        String name = which.substring(0, which.indexOf(':')), kind = which.substring(which.indexOf(':') + 1);
        ModelDropout on = switch (kind) {
            case "attention" -> new ModelDropout(0.3, 0, 0);
            case "residual" -> new ModelDropout(0, 0.3, 0);
            default -> new ModelDropout(0, 0, 0.3);
        };
        try (CausalLM m = ModelLoader.load(MODELS.resolve(name), ScalarType.Float, CPU);
             PointerScope s = new PointerScope(); NoGradGuard ng = new NoGradGuard()) {
            Tensor x = ids(2, 24, 5);
            m.setDropout(ModelDropout.NONE);
            double eval = loss(m, x, 0);
            m.setTraining(true);
            assertEquals(eval, loss(m, x, 0), 0.0, "dropout off: training mode scores as evaluation");
            m.setDropout(on);
            double train1 = loss(m, x, 9), train2 = loss(m, x, 9), train3 = loss(m, x, 10);
            assertNotEquals(eval, train1, which + ": dropout changes the training loss");
            assertEquals(train1, train2, 0.0, "the same seed draws the same masks");
            assertNotEquals(train1, train3, "another seed draws other masks");
            m.setTraining(false);
            assertEquals(eval, loss(m, x, 9), 0.0, "evaluation: no dropout");
        }
    }

    /** Label smoothing through the model's loss (gathered targets, chunked) equals LibTorch's cross_entropy(label_smoothing) on all logits. */
    @ParameterizedTest
    @ValueSource(strings = {"llama-tiny", "gpt2-tiny"})
    void smoothedModelLossEqualsCrossEntropyWithLabelSmoothing(String name) {
        try (CausalLM m = ModelLoader.load(MODELS.resolve(name), ScalarType.Float, CPU);
             PointerScope s = new PointerScope(); NoGradGuard ng = new NoGradGuard()) {
            Tensor x = ids(2, 24, 6);
            Tensor labels = x.clone();
            labels.narrow(1, 0, 7).fill_(new Scalar(-100));                          // a prompt that scores nothing
            Tensor hidden = m.hidden(x, null, null, null);
            Tensor logits = m.logits(hidden).narrow(1, 0, 23).reshape(-1, 128);      // position t scores label t+1
            Tensor target = labels.narrow(1, 1, 23).reshape(-1);
            for (double eps : new double[] {0.0, 0.1, 0.4}) {
                double want = torch.cross_entropy_loss(logits, target, new TensorOptional(), 2, -100, eps).item_double();
                double got = CausalLmLoss.sumAtTargets(m, hidden, labels, eps).item_double();
                assertEquals(want, got, 1e-5 * Math.abs(want), name + " eps " + eps);
            }
        }
    }

    /** The summed training-mode loss of x (each token scores the next) after seeding the generator. */
    private static double loss(CausalLM m, Tensor x, long seed) {
        torch.manual_seed(seed);
        return CausalLmLoss.sumAtTargets(m, m.hidden(x, null, null, null), x).item_double();
    }

    private static double[] toDoubles(Tensor t) {
        float[] f = Tensors.toFloats(t.contiguous());
        double[] out = new double[f.length];
        for (int i = 0; i < f.length; i++) out[i] = f[i];
        return out;
    }
}
