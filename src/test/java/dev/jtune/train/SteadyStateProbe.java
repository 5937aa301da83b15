package dev.jtune.train;

import dev.jtune.train.step.ActivationCheckpointing;
import dev.jtune.train.step.TrainStep;
import dev.jtune.train.step.Trainable;
import dev.jtune.config.Precision;
import dev.jtune.data.Batch;
import dev.jtune.data.Batcher;
import dev.jtune.data.Example;
import dev.jtune.kernels.EmulatedOps;
import dev.jtune.kernels.Ops;
import dev.jtune.model.ModelConfig;
import dev.jtune.peft.LoraSpec;
import org.bytedeco.pytorch.Device;
import org.bytedeco.pytorch.global.torch;
import org.bytedeco.pytorch.global.torch.ScalarType;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.Locale;
import java.util.Random;

/**
 * The child process of {@link MemorySteadyStateTest}: trains {@code steps} optimizer steps of the model directory it
 * is given through the trainer's own step ({@link TrainStep#run}) and prints, after each step, the process's
 * anonymous resident memory ({@code RssAnon} of /proc/self/status after glibc's {@code malloc_trim}: native tensors
 * and the Java heap, not the mapped weight files); on CUDA also the caching allocator's allocated bytes. Last, the same after the model is closed.
 *
 * <p>Lines: {@code step N rss_anon_kib K cuda_allocated_bytes B} (B = -1 on the CPU), then {@code closed ...}.
 *
 * <p>Arguments: model-dir steps device kernels(off|emulated) lora(true|false) checkpointing(true|false)
 */
public final class SteadyStateProbe {
    public static void main(String[] args) throws IOException {
        Path dir = Path.of(args[0]);
        int steps = Integer.parseInt(args[1]);
        Device device = new Device(args[2]);
        Ops ops = args[3].equals("emulated") ? EmulatedOps.policy() : Ops.OFF;
        boolean lora = Boolean.parseBoolean(args[4]);
        boolean checkpointing = Boolean.parseBoolean(args[5]);
        run(dir, steps, device, ops, lora, checkpointing, line -> System.out.println(line));
    }

    /** Trains and reports each step's memory to {@code out}; in this process (the CUDA test) or a child (the CPU one). */
    static void run(Path dir, int steps, Device device, Ops ops, boolean lora, boolean checkpointing,
                    java.util.function.Consumer<String> out) throws IOException {
        ModelConfig config = ModelConfig.read(dir);
        torch.manual_seed(1);
        Trainable t = lora
                ? new Trainable.Adapters(config, device, ScalarType.Float, new LoraSpec(8, 16, 0.1, List.of("all-linear"), false, false), null, 1, ops, null)
                : new Trainable.Full(config, device, ops);
        TrainStep step = TrainStep.assemble(t, TrainStep.Settings.defaults(Precision.FP32, 0.01, 1.0)
                .withCheckpointing(new ActivationCheckpointing.Settings(checkpointing, checkpointing)), dev.jtune.distributed.DistGroup.single());
        List<Batch> batches = batches((int) config.vocabSize());
        // once, before the steps: what loading left for the collector (JavaCPP frees unreachable pointers after a GC)
        // would otherwise be freed during some later step and look like the baseline moving. No GC during the steps.
        System.gc();
        for (int s = 1; s <= steps; s++) {
            List<Batch> micro = List.of(batches.get((2 * s) % batches.size()), batches.get((2 * s + 1) % batches.size()));
            TrainStep.Result r = step.step(micro, 1e-3);
            if (!Double.isFinite(r.loss())) throw new IllegalStateException("step " + s + ": loss " + r.loss());
            out.accept(String.format(Locale.ROOT, "step %d rss_anon_kib %d cuda_allocated_bytes %d malloc_in_use %d loss %.4f", s,
                    rssAnonKib(), cudaAllocated(device), mallocInUse(), r.loss()));
        }
        step.close();
        out.accept(String.format(Locale.ROOT, "closed rss_anon_kib %d cuda_allocated_bytes %d", rssAnonKib(), cudaAllocated(device)));
    }

    /** Rows of 64 random tokens, the first quarter prompt (-100), batched two to a micro-batch (no packing). */
    static List<Batch> batches(int vocab) {
        Random r = new Random(7);
        List<Example> examples = new ArrayList<>();
        for (int i = 0; i < 16; i++) {
            long[] ids = new long[64], labels = new long[64];
            for (int k = 0; k < ids.length; k++) {
                ids[k] = r.nextInt(vocab);
                labels[k] = k < ids.length / 4 ? -100 : ids[k];
            }
            examples.add(new Example(ids, labels));
        }
        List<Batch> out = new ArrayList<>();
        Iterator<Batch> it = new Batcher(examples, 2, false, 0, false, 64, 0).epoch(0, 0);
        while (it.hasNext()) out.add(it.next());
        return out;
    }

    /** glibc's malloc_trim: hands free heap pages back to the kernel, so RssAnon counts live allocations only. */
    private interface LibC extends com.sun.jna.Library {
        int malloc_trim(long pad);

        MallInfo2.ByValue mallinfo2();
    }

    /** glibc's struct mallinfo2 (2.33+), summed over all arenas. */
    @com.sun.jna.Structure.FieldOrder({"arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost"})
    public static class MallInfo2 extends com.sun.jna.Structure {
        public long arena, ordblks, smblks, hblks, hblkhd, usmblks, fsmblks, uordblks, fordblks, keepcost;

        public static class ByValue extends MallInfo2 implements com.sun.jna.Structure.ByValue {}
    }

    /** Bytes malloc has handed out and not got back (in the arenas plus mmapped chunks): native tensors, not JIT code. */
    static long mallocInUse() {
        MallInfo2 m = LIBC.mallinfo2();
        return m.uordblks + m.hblkhd;
    }

    private static final LibC LIBC = com.sun.jna.Native.load("c", LibC.class);

    /**
     * RssAnon from /proc/self/status, in KiB, after {@code malloc_trim(0)}: without it, memory freed inside glibc's
     * heaps stays resident in amounts that depend on the order of frees (10 MiB swings from step to step here).
     */
    static long rssAnonKib() throws IOException {
        LIBC.malloc_trim(0);
        for (String line : Files.readAllLines(Path.of("/proc/self/status"))) {
            if (line.startsWith("RssAnon:")) return Long.parseLong(line.replaceAll("[^0-9]", ""));
        }
        throw new IllegalStateException("no RssAnon in /proc/self/status");
    }

    /** The CUDA caching allocator's currently allocated bytes on the device, or -1 on the CPU. */
    static long cudaAllocated(Device device) {
        if (!device.is_cuda()) return -1;
        // the allocator's books are kept on the host at each allocation and free: no device sync needed
        return torch.getDeviceStats((byte) (device.has_index() ? device.index() : 0)).allocated_bytes().current();
    }
}
