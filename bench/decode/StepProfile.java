import dev.jtune.kernels.CpuLinear;
import dev.jtune.kernels.Ops;
import dev.jtune.model.CausalLM;
import dev.jtune.model.KvCache;
import dev.jtune.model.ModelLoader;
import dev.jtune.util.Tensors;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.Device;
import org.bytedeco.pytorch.NoGradGuard;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.TensorOptional;
import org.bytedeco.pytorch.global.torch;
import org.bytedeco.pytorch.global.torch.ScalarType;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * Where one fp32 decode step's time goes, in one process (so one load): the whole step with jtune's split
 * matrix-vector linears (kernels auto) and with torch.linear (kernels off), alternating; then each projection of block
 * 0 and the output head alone, both ways, and what is left of the step (attention, norms, RoPE, embedding, Java).
 *
 *   java -cp "$(cat target/decode-bench.cp):target/classes" bench/decode/StepProfile.java MODEL_DIR [STEPS]
 */
public class StepProfile {
    public static void main(String[] a) throws Exception {
        Path dir = Path.of(a[0]);
        int steps = a.length > 1 ? Integer.parseInt(a[1]) : 8;
        NoGradGuard ng = new NoGradGuard();
        Device cpu = new Device("cpu");
        try (CausalLM auto = ModelLoader.load(dir, ScalarType.Float, cpu, Ops.AUTO);
             CausalLM off = ModelLoader.load(dir, ScalarType.Float, cpu, Ops.OFF)) {
            System.out.printf("threads %d, load %s%n", torch.get_num_threads(), Files.readString(Path.of("/proc/loadavg")).trim());
            double[] perStep = new double[2];
            for (int round = 0; round < 2; round++) {
                for (int m = 0; m < 2; m++) {
                    perStep[m] += stepSeconds(m == 0 ? auto : off, steps) / 2;
                }
            }
            System.out.printf("decode step: split mv %.1f ms, torch.linear %.1f ms (%.2fx)%n", perStep[0] * 1e3, perStep[1] * 1e3, perStep[1] / perStep[0]);
            Map<String, Tensor> w = new LinkedHashMap<>();
            for (String n : new String[] {"q_proj", "k_proj", "v_proj", "o_proj"}) w.put(n, auto.parameters().get("model.layers.0.self_attn." + n + ".weight"));
            for (String n : new String[] {"gate_proj", "up_proj", "down_proj"}) w.put(n, auto.parameters().get("model.layers.0.mlp." + n + ".weight"));
            double blockMv = 0, blockLinear = 0;
            for (var e : w.entrySet()) {
                double[] t = linearMicros(e.getValue());
                blockMv += t[0];
                blockLinear += t[1];
                System.out.printf("  %-9s %5d x %-5d split mv %8.0f us  torch.linear %8.0f us%n", e.getKey(), e.getValue().size(0), e.getValue().size(1), t[0], t[1]);
            }
            double[] head = linearMicros(auto.outputWeight());
            int layers = auto.config().numLayers();
            System.out.printf("  %-9s %5d x %-5d split mv %8.0f us  torch.linear %8.0f us%n", "lm_head", auto.outputWeight().size(0), auto.outputWeight().size(1), head[0], head[1]);
            double linears = (blockMv * layers + head[0]) / 1e3;
            System.out.printf("split-mv step: linears %.1f ms (%d blocks x %.1f + head %.1f), the rest %.1f ms%n",
                    linears, layers, blockMv / 1e3, head[0] / 1e3, perStep[0] * 1e3 - linears);
            System.out.printf("torch.linear step: linears %.1f ms, the rest %.1f ms%n", (blockLinear * layers + head[1]) / 1e3,
                    perStep[1] * 1e3 - (blockLinear * layers + head[1]) / 1e3);
            System.out.printf("load %s%n", Files.readString(Path.of("/proc/loadavg")).trim());
        }
    }

    /** Mean seconds per decode step after a 16-token prompt. */
    static double stepSeconds(CausalLM m, int steps) {
        try (KvCache cache = m.newCache(1, 16 + steps + 1); PointerScope s = new PointerScope()) {
            long[] prompt = new long[16];
            for (int i = 0; i < 16; i++) prompt[i] = 100 + i;
            m.forward(Tensors.longs(new long[][] {prompt}), null, null, cache);
            long t0 = System.nanoTime();
            long next = 7;
            for (int i = 0; i < steps; i++) {
                try (PointerScope step = new PointerScope()) {
                    next = torch.argmax(m.forward(Tensors.longs(new long[][] {{next}}), null, null, cache)).item_long();
                }
            }
            return (System.nanoTime() - t0) / 1e9 / steps;
        }
    }

    /** Microseconds of one (1, d) x weight^T product: split mv, then torch.linear (median of 5 each). */
    static double[] linearMicros(Tensor w) {
        Tensor x = torch.randn(1, w.size(1));
        double[] out = new double[2];
        for (int m = 0; m < 2; m++) {
            double[] t = new double[5];
            for (int r = 0; r < t.length; r++) {
                try (PointerScope s = new PointerScope()) {
                    long t0 = System.nanoTime();
                    if (m == 0) CpuLinear.apply(x, w, null);
                    else torch.linear(x, w, new TensorOptional());
                    t[r] = (System.nanoTime() - t0) / 1e3;
                }
            }
            java.util.Arrays.sort(t);
            out[m] = t[2];
        }
        return out;
    }
}
