package dev.jtune.train;

import dev.jtune.train.step.ActivationCheckpointing;
import dev.jtune.train.step.TrainStep;
import dev.jtune.train.step.Trainable;
import dev.jtune.config.Precision;
import dev.jtune.data.Batch;
import dev.jtune.distributed.DataParallel;
import dev.jtune.distributed.DistGroup;
import dev.jtune.distributed.LaunchEnv;
import dev.jtune.kernels.Ops;
import dev.jtune.model.ModelConfig;
import dev.jtune.model.ModelInit;
import dev.jtune.model.ModelWriter;
import org.bytedeco.pytorch.Device;
import org.bytedeco.pytorch.global.torch;
import org.bytedeco.pytorch.global.torch.ScalarType;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The overlapped gradient all-reduce leaves nothing behind: the trainer's step with a real process group (Gloo, world
 * size 1: the whole path in one child JVM), small buckets (JTUNE_DDP_BUCKET_CAP_MB=0.1, so most start from the backward's
 * hooks), 30 steps; malloc'd bytes after the last step within MemorySteadyStateTest's bounds of step 5's. What is new
 * per step: the hooks on the block inputs (AutogradBridge's owner), and each bucket's c10d work and tensor list, kept past
 * the hook's PointerScope until the wait.
 */
class DataParallelMemoryTest {
    static final int STEPS = 30, BASELINE_STEP = 5;

    @TempDir
    static Path tmp;

    @ParameterizedTest(name = "checkpointing={0}")
    @ValueSource(booleans = {false, true})
    void theOverlappedAllReduceLeavesNothingBehind(boolean checkpointing) throws Exception {
        Path model = tmp.resolve("llama-tiny");
        if (!Files.exists(model.resolve("config.json"))) {
            ModelConfig c = ModelConfig.parse(ModelInit.presetConfig("llama", "tiny", 4096, 1L, 2L), model.resolve("config.json"));
            ModelWriter.save(model, c, ModelInit.randomParameters(c, 3, ScalarType.Float), ScalarType.Float, null, null);
        }
        Path log = tmp.resolve("probe-" + checkpointing + ".log");
        List<String> cmd = List.of(Path.of(System.getProperty("java.home"), "bin", "java").toString(),
                "-Xms192m", "-Xmx192m", "-XX:+AlwaysPreTouch", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
                "-cp", System.getProperty("java.class.path"), Probe.class.getName(), model.toString(),
                Integer.toString(STEPS), Boolean.toString(checkpointing), Integer.toString(DataParallelTest.freePort()));
        ProcessBuilder pb = new ProcessBuilder(cmd).redirectErrorStream(true).redirectOutput(log.toFile());
        pb.environment().put("MALLOC_ARENA_MAX", "2");
        pb.environment().put("JTUNE_NUM_THREADS", "1");
        pb.environment().put("JTUNE_DDP_BUCKET_CAP_MB", "0.1");
        Process p = pb.start();
        assertTrue(p.waitFor(10, TimeUnit.MINUTES), "probe timed out");
        String out = Files.readString(log);
        assertEquals(0, p.exitValue(), "probe failed:\n" + out);

        List<long[]> steps = new ArrayList<>();   // {step, malloc_in_use_kib, buckets started during the backward, buckets}
        for (String line : out.lines().toList()) {
            String[] f = line.split(" ");
            if (f[0].equals("step")) {
                steps.add(new long[] {Long.parseLong(f[1]), Long.parseLong(f[3]) / 1024, Long.parseLong(f[5]), Long.parseLong(f[7])});
            }
        }
        assertEquals(STEPS, steps.size(), out);
        for (long[] s : steps) assertTrue(s[2] >= 1 && s[2] < s[3], "step " + s[0] + ": " + s[2] + " of " + s[3] + " buckets started during the backward");
        long base = steps.get(BASELINE_STEP - 1)[1], stray = 0;
        StringBuilder series = new StringBuilder();
        for (long[] s : steps) {
            series.append(s[0]).append(':').append(s[1] - base).append(' ');
            if (s[0] > BASELINE_STEP) stray = Math.max(stray, s[1] - base);
        }
        System.out.printf(Locale.ROOT, "data parallel steady state checkpointing=%s: %d of %d buckets started during the backward; "
                + "malloc'd KiB after each step minus step %d's: %s%n", checkpointing, steps.get(0)[2], steps.get(0)[3], BASELINE_STEP, series);
        long last = steps.get(STEPS - 1)[1] - base;
        assertTrue(last <= MemorySteadyStateTest.MALLOC_KIB, "malloc'd bytes grew by " + last + " KiB over " + STEPS + " steps: " + series);
        assertTrue(stray <= MemorySteadyStateTest.MALLOC_STRAY_KIB, "malloc'd bytes strayed " + stray + " KiB: " + series);
    }

    /** The child: rank 0 of 1 over Gloo, the trainer's step with DataParallel; a line per step. */
    public static final class Probe {
        public static void main(String[] args) throws Exception {
            Path dir = Path.of(args[0]);
            int steps = Integer.parseInt(args[1]);
            boolean checkpointing = Boolean.parseBoolean(args[2]);
            Device cpu = new Device("cpu");
            LaunchEnv env = LaunchEnv.fromEnvironment(Map.of("RANK", "0", "LOCAL_RANK", "0", "WORLD_SIZE", "1", "LOCAL_WORLD_SIZE", "1",
                    "MASTER_ADDR", "127.0.0.1", "MASTER_PORT", args[3])).orElseThrow();
            DistGroup group = DistGroup.join(env, cpu, Duration.ofSeconds(60), System.err);
            ModelConfig config = ModelConfig.read(dir);
            torch.manual_seed(1);
            Trainable t = new Trainable.Full(config, cpu, Ops.OFF);
            TrainStep step = TrainStep.assemble(t, TrainStep.Settings.defaults(Precision.FP32, 0.01, 1.0)
                    .withCheckpointing(new ActivationCheckpointing.Settings(checkpointing, false)), group);
            DataParallel dp = step.dataParallel();
            List<Batch> batches = SteadyStateProbe.batches((int) config.vocabSize());
            System.gc();   // what loading left for the collector, before the baseline (as SteadyStateProbe)
            for (int s = 1; s <= steps; s++) {
                List<Batch> micro = List.of(batches.get((2 * s) % batches.size()), batches.get((2 * s + 1) % batches.size()));
                dp.startStep(s);
                TrainStep.Result r = step.step(micro, 1e-3);
                if (!Double.isFinite(r.loss())) throw new IllegalStateException("step " + s + ": loss " + r.loss());
                SteadyStateProbe.rssAnonKib();   // malloc_trim, as the other probe does before it reads
                System.out.printf(Locale.ROOT, "step %d malloc_in_use %d early %d of %d%n", s, SteadyStateProbe.mallocInUse(),
                        dp.bucketsStartedDuringBackward(), dp.bucketCount());
            }
            step.close();
            group.close();
            System.exit(0);   // the native group's teardown is left to the process's exit, as the trainer does
        }
    }
}
