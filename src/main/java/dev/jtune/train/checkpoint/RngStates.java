package dev.jtune.train.checkpoint;

import dev.jtune.distributed.DistGroup;
import dev.jtune.io.SafetensorsFile;
import dev.jtune.util.Tensors;
import org.bytedeco.pytorch.Device;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch;

import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * The random generators in a checkpoint (they drive dropout, LoRA dropout and NEFTune's noise), so that a resumed run
 * draws the same masks. Each file holds {@code torch_cpu} (the CPU generator's state, uint8) and, on CUDA,
 * {@code torch_cuda} (the training device's generator).
 *
 * <p>One file per rank, as transformers keeps {@code rng_state_{rank}.pth}: every rank is seeded alike, but ranks whose
 * micro-batches differ in shape (no packing: each pads to its own longest row) draw different numbers of values, so
 * their generators drift apart. A single-process run (world size 1) writes {@link #SINGLE}, the name checkpoints had
 * before, so those still load.
 */
public final class RngStates {
    /** A run of world size 1 (and every checkpoint written before per-rank files). */
    public static final String SINGLE = "rng_state.safetensors";

    private RngStates() {}

    /** Rank {@code rank}'s file in a checkpoint of a data-parallel run. */
    public static String fileOf(int rank) {
        return "rng_state_" + rank + ".safetensors";
    }

    /** This process's generators: the CPU one, and the CUDA generator of {@code device} ("cpu", "cuda:1"). */
    static Map<String, Tensor> capture(String device) {
        Map<String, Tensor> rng = new LinkedHashMap<>();
        rng.put("torch_cpu", torch.getDefaultCPUGenerator().get_state());
        if (device.startsWith("cuda")) rng.put("torch_cuda", torch.globalContext().defaultGenerator(new Device(device)).get_state());
        return rng;
    }

    /**
     * The files a checkpoint gets, by name: {@link #SINGLE} with this process's generators at world size 1, else
     * {@code rng_state_R} for every rank R. Every rank must call it (two all-reduces: each rank puts its state's
     * bytes in its own slot of zeros, so the sum is every rank's bytes, exactly, in float64).
     */
    public static Map<String, Map<String, Tensor>> gather(DistGroup group, String device) {
        Map<String, Tensor> mine = capture(device);
        if (group.worldSize() <= 1) return Map.of(SINGLE, mine);
        byte[] cpu = Tensors.toBytes(mine.get("torch_cpu"));
        byte[] cuda = mine.containsKey("torch_cuda") ? Tensors.toBytes(mine.get("torch_cuda")) : new byte[0];
        int n = group.worldSize(), me = group.rank();
        double[] lengths = new double[2 * n];   // [cpu bytes, cuda bytes] of each rank
        lengths[2 * me] = cpu.length;
        lengths[2 * me + 1] = cuda.length;
        lengths = group.allReduceSum(lengths, "all-reduce of the random generators' sizes for the checkpoint");
        int slot = 0;
        for (int r = 0; r < n; r++) slot = Math.max(slot, (int) (lengths[2 * r] + lengths[2 * r + 1]));
        double[] all = new double[n * slot];
        for (int i = 0; i < cpu.length; i++) all[me * slot + i] = cpu[i] & 0xff;
        for (int i = 0; i < cuda.length; i++) all[me * slot + cpu.length + i] = cuda[i] & 0xff;
        all = group.allReduceSum(all, "all-reduce of the random generators' states for the checkpoint");
        Map<String, Map<String, Tensor>> files = new LinkedHashMap<>();
        for (int r = 0; r < n; r++) {
            int c = (int) lengths[2 * r], g = (int) lengths[2 * r + 1];
            Map<String, Tensor> rng = new LinkedHashMap<>();
            rng.put("torch_cpu", tensor(all, r * slot, c));
            if (g > 0) rng.put("torch_cuda", tensor(all, r * slot + c, g));
            files.put(fileOf(r), rng);
        }
        return files;
    }

    /**
     * Sets this rank's generators from checkpoint {@code ck}: its own file ({@code rng_state_RANK}) when the checkpoint
     * has one, else rank 0's ({@code rng_state_0}, or {@link #SINGLE} of a single-process run). So the same world size
     * resumes exactly; on another world size ranks beyond the checkpoint's take rank 0's generators (the caller warns
     * that such a resume is not exact anyway). Returns the file read.
     *
     * @param checkpointWorldSize the world size the checkpoint was written with (trainer_state.json)
     */
    public static Path restore(Path ck, int rank, int worldSize, int checkpointWorldSize, Device device, PrintStream out) {
        Path file = null;
        for (String name : List.of(fileOf(rank), fileOf(0), SINGLE)) {
            if (Files.isRegularFile(ck.resolve(name))) {
                file = ck.resolve(name);
                break;
            }
        }
        if (file == null) file = ck.resolve(SINGLE);   // absent: SafetensorsFile's error names it
        try (SafetensorsFile f = SafetensorsFile.open(file)) {
            torch.getDefaultCPUGenerator().set_state(f.tensor("torch_cpu").clone());
            if (f.tensors().containsKey("torch_cuda") && device.is_cuda()) {
                torch.globalContext().defaultGenerator(device).set_state(f.tensor("torch_cuda").clone());
            }
        }
        String name = file.getFileName().toString();
        boolean own = name.equals(fileOf(rank)) || (rank == 0 && name.equals(SINGLE));
        if (!own && worldSize == checkpointWorldSize) {
            // a checkpoint of a data-parallel run written before jtune kept one file per rank
            out.printf(Locale.ROOT, "warning: %s has no random generator state of rank %d: it continues with %s, so its "
                    + "dropout masks differ from those of the uninterrupted run%n", ck, rank, file.getFileName());
        }
        return file;
    }

    /** The CPU generator's state saved in {@code file} (tests compare the ranks'). */
    public static byte[] cpuState(Path file) {
        try (SafetensorsFile f = SafetensorsFile.open(file)) {
            return Tensors.toBytes(f.tensor("torch_cpu"));
        }
    }

    /** A uint8 tensor of the {@code length} byte values at {@code values[from…]} (the all-reduced doubles). */
    private static Tensor tensor(double[] values, int from, int length) {
        byte[] b = new byte[length];
        for (int i = 0; i < length; i++) b[i] = (byte) (int) values[from + i];
        return Tensors.bytes(b);
    }
}
