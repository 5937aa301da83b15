package dev.jtune.kernels;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.jtune.util.Tensors;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch.ScalarType;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

import java.io.IOException;
import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * {@code training.label_smoothing_factor} in the chunked loss, on both of its paths (LibTorch, and the kernel path run
 * by the emulated kernels on the CPU), against PyTorch's {@code cross_entropy(label_smoothing=eps, reduction="sum")} and
 * its gradients, and against a transcription of transformers' LabelSmoother on the same logits (both computed by
 * src/test/python/regularisation/regularisation_reference.py; the values are committed). Rows with target -100 count
 * nothing, and chunks smaller than the rows split them.
 */
class LabelSmoothingReferenceTest {
    static final Path REFERENCE = Path.of("src/test/resources/regularisation/reference.json");

    static JsonNode reference() throws IOException {
        return new ObjectMapper().readTree(REFERENCE.toFile());
    }

    static float[] floats(JsonNode array) {
        float[] out = new float[array.size()];
        for (int i = 0; i < out.length; i++) out[i] = (float) array.get(i).asDouble();
        return out;
    }

    @ParameterizedTest(name = "kernels={0} chunk={1}")
    @CsvSource({"off, 3", "off, 10", "emulated, 4", "emulated, 10"})
    void smoothedLossAndGradientsEqualTorchCrossEntropy(String kernels, long chunk) throws IOException {
        JsonNode ls = reference().get("label_smoothing");
        int n = ls.get("n").asInt(), d = ls.get("d").asInt(), v = ls.get("v").asInt();
        Ops ops = kernels.equals("off") ? Ops.OFF : EmulatedOps.policy();
        T.Tol tol = T.Tol.of(ScalarType.Float).times(4);   // sums of 37 exponentials and of 6- to 10-term products
        for (JsonNode c : ls.get("cases")) {
            double eps = c.get("epsilon").asDouble();
            try (PointerScope s = new PointerScope()) {
                Tensor h = T.leaf(Tensors.floats(floats(ls.get("hidden"))).view(n, d));
                Tensor w = T.leaf(Tensors.floats(floats(ls.get("weight"))).view(v, d));
                long[] t = new long[n];
                for (int i = 0; i < n; i++) t[i] = ls.get("targets").get(i).asLong();
                Tensor loss = ops.crossEntropySum(h, w, Tensors.longs(t), chunk, eps);
                loss.backward();
                String what = "eps " + eps + ": ";
                T.close(loss, Tensors.floats(new float[] {(float) c.get("loss_sum").asDouble()}).view(new long[] {}), tol, what + "summed loss");
                // transformers' LabelSmoother is the mean over the counted targets
                assertEquals(c.get("label_smoother_mean").asDouble(), loss.item_double() / c.get("targets_counted").asInt(),
                        tol.atol() + tol.rtol() * Math.abs(c.get("label_smoother_mean").asDouble()), what + "LabelSmoother's value");
                T.close(h.grad(), Tensors.floats(floats(c.get("grad_hidden"))).view(n, d), tol, what + "d loss / d hidden");
                T.close(w.grad(), Tensors.floats(floats(c.get("grad_weight"))).view(v, d), tol, what + "d loss / d weight");
            }
        }
    }

    /**
     * Logits here reach |z| ~ 10, whose bf16 rounding (2^-9 relative, ~0.02) moves a probability by up to 2%, times
     * hidden values up to 2.8 in each of the 7 terms of a weight gradient: atol 3e-2 on top of bf16's rtol.
     */
    static final T.Tol BF16 = new T.Tol(1.6e-2, 3e-2);

    /**
     * In bfloat16 (logits and gradients rounded to 8 bits, where the kernel path adds the smoothing corrections in
     * place) both paths agree with the float32 path, already checked above, on the same bf16-rounded inputs; and
     * the smoothing moves the float32 gradients by far more than that tolerance, so a lost correction would show.
     */
    @ParameterizedTest(name = "kernels={0}")
    @CsvSource({"off", "emulated"})
    void bfloat16AgreesWithFloat32OnTheSameInputs(String kernels) throws IOException {
        JsonNode ls = reference().get("label_smoothing");
        int n = ls.get("n").asInt(), d = ls.get("d").asInt(), v = ls.get("v").asInt();
        Ops ops = kernels.equals("off") ? Ops.OFF : EmulatedOps.policy();
        long[] t = new long[n];
        for (int i = 0; i < n; i++) t[i] = ls.get("targets").get(i).asLong();
        try (PointerScope s = new PointerScope()) {
            Tensor h16 = T.leaf(Tensors.floats(floats(ls.get("hidden"))).view(n, d).to(ScalarType.BFloat16));
            Tensor w16 = T.leaf(Tensors.floats(floats(ls.get("weight"))).view(v, d).to(ScalarType.BFloat16));
            Tensor h32 = T.leaf(h16.to(ScalarType.Float)), w32 = T.leaf(w16.to(ScalarType.Float));
            Tensor got = ops.crossEntropySum(h16, w16, Tensors.longs(t), 3, 0.3);
            got.backward();
            Tensor want = Ops.OFF.crossEntropySum(h32, w32, Tensors.longs(t), 3, 0.3);
            want.backward();
            T.close(got, want, BF16, "summed loss");
            T.close(h16.grad(), h32.grad(), BF16, "d loss / d hidden");
            T.close(w16.grad(), w32.grad(), BF16, "d loss / d weight");
            Tensor h0 = T.leaf(h32), w0 = T.leaf(w32);
            Ops.OFF.crossEntropySum(h0, w0, Tensors.longs(t), 3, 0.0).backward();
            double moved = w0.grad().sub(w32.grad()).abs().max().item_double();
            assertTrue(moved > 5 * BF16.atol(), "smoothing moves a weight gradient by " + moved);
        }
    }
}
