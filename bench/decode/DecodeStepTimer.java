import dev.jtune.kernels.Ops;
import dev.jtune.model.CausalLM;
import dev.jtune.model.KvCache;
import dev.jtune.model.ModelLoader;
import dev.jtune.util.NativeRuntime;
import dev.jtune.util.Tensors;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.Device;
import org.bytedeco.pytorch.NoGradGuard;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch;
import org.bytedeco.pytorch.global.torch.ScalarType;

import java.nio.file.Path;

/**
 * One build's side of {@link DecodeAB}: loads the model fp32 on the CPU as {@code jtune generate} does (kernels auto)
 * and times greedy decode steps: a 16-token prompt per row, then {@code steps} steps of one token per row, every row
 * at the same length (the batched path's product shapes; the ragged-row bookkeeping is BatchGenerator's).
 */
public class DecodeStepTimer {
    static CausalLM model;

    public static void configure() {
        NativeRuntime.configureEnvironment();
        NativeRuntime.configureThreads();
    }

    public static void load(Path dir) {
        model = ModelLoader.load(dir, ScalarType.Float, new Device("cpu"), Ops.AUTO);
    }

    /** CpuLinear.reorderedWeights(model weights) in builds that have it (reflection: the other build may not), else a no-op. */
    static AutoCloseable decodingSession() {
        try {
            java.lang.reflect.Method m = Class.forName("dev.jtune.kernels.CpuLinear", true, DecodeStepTimer.class.getClassLoader())
                    .getMethod("reorderedWeights", Iterable.class);
            return (AutoCloseable) m.invoke(null, model.parameters().values());
        } catch (ReflectiveOperationException e) {
            return () -> {};
        }
    }

    /** Mean seconds per decode step of {@code batch} rows: wall clock, and CPU time of the whole process (all threads). */
    public static double[] stepSeconds(int batch, int steps) throws Exception {
        com.sun.management.OperatingSystemMXBean os = (com.sun.management.OperatingSystemMXBean) java.lang.management.ManagementFactory.getOperatingSystemMXBean();
        AutoCloseable session = decodingSession();   // what BatchGenerator opens around a batched generation, where the build has it
        try (NoGradGuard ng = new NoGradGuard(); KvCache cache = model.newCache(batch, 16 + steps + 1); PointerScope s = new PointerScope(); session) {
            long[][] prompt = new long[batch][16];
            for (int b = 0; b < batch; b++) for (int i = 0; i < 16; i++) prompt[b][i] = 100 + 7 * b + i;
            Tensor next = torch.argmax(model.forward(Tensors.longs(prompt), null, null, cache).select(1, 15), new org.bytedeco.pytorch.LongOptional(1), false).view(batch, 1);
            next.retainReference();
            long t0 = System.nanoTime(), c0 = os.getProcessCpuTime();
            for (int i = 0; i < steps; i++) {
                try (PointerScope step = new PointerScope()) {
                    Tensor logits = model.forward(next, null, null, cache);                       // (B, 1, V)
                    Tensor n = torch.argmax(logits.select(1, 0), new org.bytedeco.pytorch.LongOptional(1), false).view(batch, 1);
                    n.retainReference();
                    next.releaseReference();
                    next = n;
                }
            }
            double sec = (System.nanoTime() - t0) / 1e9 / steps, cpu = (os.getProcessCpuTime() - c0) / 1e9 / steps;
            next.releaseReference();
            return new double[] {sec, cpu};
        }
    }
}
