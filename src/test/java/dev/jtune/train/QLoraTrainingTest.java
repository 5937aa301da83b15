package dev.jtune.train;

import dev.jtune.config.Experiment;
import dev.jtune.config.Precision;
import dev.jtune.kernels.Ops;
import dev.jtune.metrics.TrainPoint;
import dev.jtune.model.CausalLM;
import dev.jtune.tokenizer.HfTokenizer;
import org.bytedeco.pytorch.Device;
import org.bytedeco.pytorch.global.torch.ScalarType;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * QLoRA: LoRA adapters on a base quantized to 4 bits on load (model.quantization). A short run lowers the loss and the
 * saved adapter reproduces its validation loss on the 4-bit base; a run killed with SIGKILL resumes exactly, as
 * {@link ResumeTest} checks for LoRA (the same child-JVM helpers).
 */
class QLoraTrainingTest {
    @TempDir
    static Path tmp;
    static Path model, csv;

    @BeforeAll
    static void setUp() throws IOException {
        model = tmp.resolve("base");
        TrainerTest.writeTinyLlama(model);
        StringBuilder sb = new StringBuilder("question,answer\n");
        for (int i = 0; i < 40; i++) sb.append("what is item ").append(i).append("?,item ").append(i).append(" is a number; it follows ").append(i - 1).append(".\n");
        csv = Files.writeString(tmp.resolve("qa.csv"), sb.toString());
    }

    /** 12 steps of QLoRA (nf4, double quantization, all-linear adapters with dropout), checkpoints every 3. */
    static Path experiment(String name, String... extra) throws IOException {
        Path yaml = tmp.resolve(name + ".yaml");
        List<String> lines = new ArrayList<>(List.of("model:", "  path: " + model, "  quantization:", "    load_in_4bit: true",
                "    bnb_4bit_quant_type: nf4", "    bnb_4bit_use_double_quant: true", "data:", "  train_file: " + csv,
                "  format: instruction", "  prompt_column: question", "  response_column: answer", "  validation_split: 0.2",
                "  max_seq_length: 48", "training:", "  output_dir: " + tmp.resolve(name), "  max_steps: 12",
                "  per_device_train_batch_size: 4", "  learning_rate: 3.0e-3", "  lr_scheduler_type: cosine", "  warmup_steps: 2",
                "  logging_steps: 1", "  eval_steps: 3", "  save_steps: 3", "  save_total_limit: 3", "  device: cpu", "  seed: 11",
                "lora:", "  enabled: true", "  r: 4", "  dropout: 0.1", "  target_modules: all-linear"));
        lines.addAll(List.of(extra));
        Files.writeString(yaml, String.join("\n", lines) + "\n");
        return yaml;
    }

    @Test
    void qloraLowersTheLossAndTheAdapterReloadsOnTheFourBitBase() throws IOException {
        byte[] before = Files.readAllBytes(model.resolve("model.safetensors"));
        Experiment e = Experiment.load(experiment("learn"), List.of("training.max_steps=20", "training.learning_rate=2.0e-2",
                "training.lr_scheduler_type=constant", "training.warmup_steps=0", "training.eval_steps=10", "training.save_steps=10"));
        ByteArrayOutputStream console = new ByteArrayOutputStream();
        Trainer.Outcome o = new Trainer(e, new PrintStream(console, true, StandardCharsets.UTF_8), null, false).run();
        String text = console.toString(StandardCharsets.UTF_8);
        assertTrue(text.contains("base frozen in 4 bits"), text);
        assertArrayEquals(before, Files.readAllBytes(model.resolve("model.safetensors")), "base weights untouched");
        List<TrainPoint> log = o.trainLog();
        double first = log.get(0).loss(), last = log.get(log.size() - 1).loss();
        assertTrue(last < first - 0.5, "QLoRA learns: " + first + " -> " + last);
        // the saved adapter on the same 4-bit base reproduces the best validation loss
        try (HfTokenizer tok = HfTokenizer.load(o.finalDir());
             CausalLM m = dev.jtune.peft.AdapterLoader.load(model, o.finalDir(), ScalarType.Float, new Device("cpu"), Ops.AUTO,
                     e.model().quantization().toConfig())) {
            var data = dev.jtune.data.DatasetPreparer.prepare(e.data(), e.training().seed(), tok,
                    new PrintStream(new ByteArrayOutputStream(), true, StandardCharsets.UTF_8));
            assertEquals(o.bestEvalLoss(), Evaluator.evaluate(m, data.validation(), 8, 48, tok.paddingId(), Precision.FP32).loss(), 1e-5);
        }
    }

    /** {@link ResumeTest#sigkillThenResumeGivesTheSameLossesBitForBit} on a 4-bit base. */
    @Test
    void sigkillThenResumeGivesTheSameLossesBitForBit() throws Exception {
        Process ref = ResumeTest.child(experiment("whole"), tmp.resolve("whole.log"));
        assertEquals(0, ref.waitFor(), Files.readString(tmp.resolve("whole.log")));
        Map<Long, Double> want = ResumeTest.losses(tmp.resolve("whole"));
        assertEquals(12, want.size());

        int killAt = 4 + new Random().nextInt(5);   // steps 4..8: after the checkpoint at 3 or 6
        Path cut = experiment("cut");
        Process victim = ResumeTest.child(cut, tmp.resolve("cut.log"));
        ResumeTest.waitForStep(victim, tmp.resolve("cut"), killAt);
        victim.destroyForcibly().waitFor();   // SIGKILL
        long reached = ResumeTest.lastLoggedStep(tmp.resolve("cut"));
        assertTrue(reached < 12, "killed before the end (reached " + reached + ")");

        Process resumed = ResumeTest.child(cut, tmp.resolve("resume.log"), "--resume", "auto");
        assertEquals(0, resumed.waitFor(), Files.readString(tmp.resolve("resume.log")));
        assertTrue(Files.readString(tmp.resolve("resume.log")).contains("resume: continuing from"));
        Map<Long, Double> got = ResumeTest.losses(tmp.resolve("cut"));
        assertEquals(want.keySet(), got.keySet(), "every step logged exactly once");
        for (long s = 1; s <= 12; s++) assertEquals(want.get(s), got.get(s), "step " + s + " (killed after step " + reached + ")");
    }
}
