package dev.jtune.train;

import dev.jtune.train.checkpoint.CheckpointRotation;
import dev.jtune.train.checkpoint.Checkpoints;
import dev.jtune.train.step.Trainable;
import dev.jtune.config.Precision;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.jtune.config.Experiment;
import dev.jtune.metrics.TrainPoint;
import dev.jtune.model.CausalLM;
import dev.jtune.model.ModelConfig;
import dev.jtune.model.ModelInit;
import dev.jtune.model.ModelLoader;
import dev.jtune.model.ModelWriter;
import dev.jtune.tokenizer.HfTokenizer;
import dev.jtune.util.Tensors;
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
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The training recipe end to end on a tiny model, with real files on disk. */
class TrainerTest {
    /** torchtune's 2000-token BPE: small vocabulary, fast steps (ASCII text only). */
    static final Path TOKENIZER = Path.of("src/test/resources/tokenizers/torchtune-tiny");
    static final ObjectMapper JSON = new ObjectMapper();

    @TempDir
    static Path tmp;
    static Path model;
    static Path csv;

    /** The train package's base model: init-model's llama tiny preset over TOKENIZER's vocabulary, fp32, seed 5. */
    static void writeTinyLlama(Path dir) throws IOException {
        try (HfTokenizer tok = HfTokenizer.load(TOKENIZER)) {
            ModelConfig c = ModelConfig.parse(ModelInit.presetConfig("llama", "tiny", tok.vocabSize(), null, null), dir.resolve("config.json"));
            ModelWriter.save(dir, c, ModelInit.randomParameters(c, 5, ScalarType.Float), ScalarType.Float, TOKENIZER, null);
        }
    }

    @BeforeAll
    static void setUp() throws IOException {
        model = tmp.resolve("base");
        writeTinyLlama(model);
        // 48 short question/answer rows with a learnable pattern
        StringBuilder sb = new StringBuilder("question,answer\n");
        String[] topics = {"mean", "median", "variance", "regression", "overfitting", "recall", "precision", "sampling"};
        for (int i = 0; i < 48; i++) {
            String topic = topics[i % topics.length];
            sb.append("what is the ").append(topic).append(" number ").append(i).append("?,")
              .append("the ").append(topic).append(" is a statistic; example ").append(i).append(" shows it.\n");
        }
        csv = Files.writeString(tmp.resolve("qa.csv"), sb.toString());
    }

    static Experiment experiment(String name, String... sets) throws IOException {
        Path yaml = tmp.resolve(name + ".yaml");
        Files.writeString(yaml, String.join("\n",
                "model:",
                "  path: " + model,
                "data:",
                "  train_file: " + csv,
                "  format: instruction",
                "  prompt_column: question",
                "  response_column: answer",
                "  validation_split: 0.125",
                "  max_seq_length: 64",
                "training:",
                "  output_dir: " + tmp.resolve(name),
                "  num_train_epochs: 2",
                "  per_device_train_batch_size: 4",
                "  learning_rate: 3.0e-3",
                "  lr_scheduler_type: constant",
                "  logging_steps: 1",
                "  device: cpu",
                "  seed: 7",
                ""));
        return Experiment.load(yaml, List.of(sets));
    }

    static Trainer.Outcome train(Experiment e) {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        return new Trainer(e, new PrintStream(out, true, StandardCharsets.UTF_8), null, false).run();
    }

    @Test
    void lossDecreasesAndEveryOutputIsWritten() throws IOException {
        Trainer.Outcome o = train(experiment("decrease", "training.num_train_epochs=6"));
        List<TrainPoint> log = o.trainLog();
        double first = log.get(0).loss(), last = log.get(log.size() - 1).loss();
        assertTrue(last < 0.6 * first, "train loss should fall clearly: " + first + " -> " + last);
        assertTrue(o.evalLog().get(o.evalLog().size() - 1).loss() < o.evalLog().get(0).loss(), "validation loss falls");
        assertEquals(6.0, o.epochs(), 1e-9);
        Path out = tmp.resolve("decrease");
        for (String f : new String[] {"config.resolved.yaml", "metrics.jsonl", "report.html", "final/config.json",
                "final/model.safetensors", "final/tokenizer.json", "final/tokenizer_config.json"}) {
            assertTrue(Files.isRegularFile(out.resolve(f)), f);
        }
        // metrics.jsonl: one object per logged step and per evaluation, with the Trainer's key names
        List<String> lines = Files.readAllLines(out.resolve("metrics.jsonl"));
        long trainLines = lines.stream().filter(l -> l.contains("\"learning_rate\"")).count();
        long evalLines = lines.stream().filter(l -> l.contains("\"eval_loss\"")).count();
        assertEquals(o.steps(), trainLines);
        assertEquals(o.evalLog().size(), evalLines);
        JsonNode firstLine = JSON.readTree(lines.get(0));
        for (String k : new String[] {"step", "epoch", "loss", "learning_rate", "grad_norm", "tokens_per_second"}) {
            assertTrue(firstLine.has(k), k);
        }
        try (Stream<Path> s = Files.list(out.resolve("runs"))) {
            assertTrue(s.anyMatch(p -> p.getFileName().toString().startsWith("events.out.tfevents.")), "TensorBoard events");
        }
        // the chat template used for training travels with the model
        assertTrue(JSON.readTree(out.resolve("final/tokenizer_config.json").toFile()).has("chat_template"));
    }

    /** 8 micro-batches of 1 give the same steps as one batch of 8 (fp32, 1e-5 relative). */
    @Test
    void gradientAccumulationEqualsOneBigBatch() throws IOException {
        Trainer.Outcome big = train(experiment("big", "training.per_device_train_batch_size=8",
                "training.gradient_accumulation_steps=1", "training.max_steps=3"));
        Trainer.Outcome acc = train(experiment("acc", "training.per_device_train_batch_size=1",
                "training.gradient_accumulation_steps=8", "training.max_steps=3"));
        assertEquals(3, big.trainLog().size());
        for (int i = 0; i < 3; i++) {
            double a = big.trainLog().get(i).loss(), b = acc.trainLog().get(i).loss();
            assertEquals(a, b, 1e-5 * Math.abs(a), "step " + (i + 1) + " loss");
            double ga = big.trainLog().get(i).gradNorm(), gb = acc.trainLog().get(i).gradNorm();
            assertEquals(ga, gb, 1e-4 * Math.abs(ga), "step " + (i + 1) + " grad norm");
        }
        try (CausalLM m1 = ModelLoader.load(big.finalDir(), ScalarType.Float, new Device("cpu"));
             CausalLM m2 = ModelLoader.load(acc.finalDir(), ScalarType.Float, new Device("cpu"))) {
            float[] w1 = Tensors.toFloats(m1.parameters().get("model.layers.0.self_attn.q_proj.weight"));
            float[] w2 = Tensors.toFloats(m2.parameters().get("model.layers.0.self_attn.q_proj.weight"));
            for (int i = 0; i < w1.length; i++) assertEquals(w1[i], w2[i], 1e-5, "weight " + i);
        }
    }

    /** final/ is a Hugging Face directory that reloads and gives the validation loss reported for it. */
    @Test
    void finalModelReloadsWithTheSameValidationLoss() throws IOException {
        Experiment e = experiment("reload", "training.num_train_epochs=3");
        Trainer.Outcome o = train(e);
        assertTrue(o.bestEvalLoss() != null);
        try (HfTokenizer tok = HfTokenizer.load(o.finalDir());
             CausalLM m = ModelLoader.load(o.finalDir(), ScalarType.Float, new Device("cpu"))) {
            var data = dev.jtune.data.DatasetPreparer.prepare(e.data(), e.training().seed(), tok,
                    new PrintStream(new ByteArrayOutputStream(), true, StandardCharsets.UTF_8));
            Evaluator.Result r = Evaluator.evaluate(m, data.validation(), 8, 64, tok.paddingId(), Precision.FP32);
            assertEquals(o.bestEvalLoss(), r.loss(), 1e-5);
        }
    }

    @Test
    void earlyStoppingStopsAfterPatienceEvaluationsWithoutImprovement() throws IOException {
        // a threshold nothing can beat: no evaluation after the first resets patience, so the next two count against it
        Trainer.Outcome o = train(experiment("early", "training.max_steps=40", "training.eval_steps=2", "training.save_steps=2",
                "training.early_stopping_patience=2", "training.early_stopping_threshold=100"));
        assertEquals(6, o.steps(), "evaluations at steps 2, 4, 6 (patience 2 used up)");
        assertTrue(o.stopReason().startsWith("early stopping"), o.stopReason());
        // transformers: the threshold is EarlyStoppingCallback's alone; the best model is the lowest loss
        // (Trainer._determine_best_metric), here the last of three falling evaluations
        double lowest = o.evalLog().stream().mapToDouble(p -> p.loss()).min().orElseThrow();
        assertEquals(lowest, o.bestEvalLoss());
        assertEquals(6L, o.bestStep(), "validation loss falls at lr 3e-3: " + o.evalLog());
    }

    @Test
    void saveTotalLimitKeepsTheNewestAndTheBest() throws IOException {
        Trainer.Outcome o = train(experiment("limit", "training.max_steps=8", "training.eval_steps=2", "training.save_steps=2",
                "training.save_total_limit=1", "training.learning_rate=1.0e-2"));
        List<Path> kept = Checkpoints.list(tmp.resolve("limit"));
        List<Long> steps = new ArrayList<>();
        for (Path p : kept) steps.add(Checkpoints.stepOf(p));
        assertTrue(steps.contains(o.bestStep()), "the best checkpoint is never deleted: " + steps);
        assertTrue(kept.size() <= 2, "at most the limit plus the best: " + steps);
        for (Path p : kept) {
            assertTrue(Files.isRegularFile(p.resolve("optimizer.safetensors")) && Files.isRegularFile(p.resolve("trainer_state.json")), p.toString());
            assertEquals(Checkpoints.stepOf(p), JSON.readTree(p.resolve("trainer_state.json").toFile()).get("global_step").asLong());
        }
        ModelLoader.inspect(kept.get(0));   // a checkpoint is a loadable model directory
    }

    @Test
    void sameSeedSameRun() throws IOException {
        Trainer.Outcome a = train(experiment("seedA", "training.max_steps=3"));
        Trainer.Outcome b = train(experiment("seedB", "training.max_steps=3"));
        double[] la = a.trainLog().stream().mapToDouble(TrainPoint::loss).toArray();
        double[] lb = b.trainLog().stream().mapToDouble(TrainPoint::loss).toArray();
        assertArrayEquals(la, lb, 0.0, "fp32 on CPU is deterministic");
    }

    /** LoRA: only the adapters change; the base checkpoint on disk is untouched; final/ is a PEFT adapter that reloads. */
    @Test
    void loraTrainsAdaptersOnAFrozenBase() throws Exception {
        byte[] before = Files.readAllBytes(model.resolve("model.safetensors"));
        Experiment e = experiment("lora", "lora.enabled=true", "lora.r=8", "lora.alpha=16", "lora.target_modules=all-linear",
                "training.num_train_epochs=4", "training.learning_rate=2.0e-2");
        Trainer.Outcome o = train(e);
        assertArrayEquals(before, Files.readAllBytes(model.resolve("model.safetensors")), "base weights untouched");
        assertTrue(Files.isRegularFile(o.finalDir().resolve("adapter_config.json")));
        assertTrue(Files.isRegularFile(o.finalDir().resolve("adapter_model.safetensors")));
        assertTrue(!Files.exists(o.finalDir().resolve("model.safetensors")), "an adapter, not a full model");
        assertTrue(Files.readString(o.report()).contains("fp32, fp32 adapters on a frozen float32 base"), "the report says LoRA");
        List<TrainPoint> log = o.trainLog();
        assertTrue(log.get(log.size() - 1).loss() < log.get(0).loss() - 0.1, "LoRA learns: " + log.get(0).loss() + " -> " + log.get(log.size() - 1).loss());
        // the saved adapter on the base reproduces the best validation loss
        try (HfTokenizer tok = HfTokenizer.load(o.finalDir());
             CausalLM m = dev.jtune.peft.AdapterLoader.load(model, o.finalDir(), ScalarType.Float, new Device("cpu"))) {
            var data = dev.jtune.data.DatasetPreparer.prepare(e.data(), e.training().seed(), tok,
                    new PrintStream(new ByteArrayOutputStream(), true, StandardCharsets.UTF_8));
            assertEquals(o.bestEvalLoss(), Evaluator.evaluate(m, data.validation(), 8, 64, tok.paddingId(), Precision.FP32).loss(), 1e-5);
        }
    }

    /** bf16 autocast training tracks fp32: each of the first 8 step losses within 2% (stated tolerance). */
    @Test
    void bf16TracksFp32() throws IOException {
        Trainer.Outcome fp32 = train(experiment("prec32", "training.max_steps=8", "training.precision=fp32"));
        Trainer.Outcome bf16 = train(experiment("prec16", "training.max_steps=8", "training.precision=bf16"));
        for (int i = 0; i < 8; i++) {
            double a = fp32.trainLog().get(i).loss(), b = bf16.trainLog().get(i).loss();
            assertEquals(a, b, 0.02 * a, "step " + (i + 1));
        }
        assertTrue(bf16.trainLog().get(7).loss() < bf16.trainLog().get(0).loss(), "bf16 learns");
    }

    /** fp16 with dynamic loss scaling trains on the CPU too; steps with overflowing gradients are skipped and counted. */
    @Test
    void fp16TrainsWithLossScaling() throws IOException {
        Trainer.Outcome o = train(experiment("prec-fp16", "training.max_steps=24", "training.precision=fp16"));
        List<TrainPoint> log = o.trainLog();
        assertTrue(log.stream().allMatch(p -> Double.isFinite(p.loss())), "losses stay finite");
        assertTrue(o.skippedSteps() < 24, "most steps are taken: skipped " + o.skippedSteps());
        assertTrue(log.get(log.size() - 1).loss() < log.get(0).loss(), "fp16 learns: " + log.get(0).loss() + " -> " + log.get(log.size() - 1).loss());
        assertTrue(Files.readString(o.report()).contains("fp16 autocast with dynamic loss scaling, fp32 master weights"), "the report says fp16");
    }

    /** lora.adapter_path continues from a saved adapter: the first evaluation starts where that run ended. */
    @Test
    void loraContinuesFromASavedAdapter() throws IOException {
        Trainer.Outcome first = train(experiment("lora-a", "lora.enabled=true", "lora.target_modules=all-linear",
                "training.num_train_epochs=2", "training.learning_rate=2.0e-2"));
        Trainer.Outcome again = train(experiment("lora-b", "lora.enabled=true", "lora.adapter_path=" + first.finalDir(),
                "training.max_steps=1", "training.learning_rate=1.0e-9", "training.eval_steps=1", "training.save_steps=1"));
        assertEquals(first.bestEvalLoss(), again.evalLog().get(0).loss(), 1e-3, "continues from the adapter, not from scratch");
        Trainer.Outcome scratch = train(experiment("lora-c", "lora.enabled=true", "lora.target_modules=all-linear",
                "training.max_steps=1", "training.learning_rate=1.0e-9", "training.eval_steps=1", "training.save_steps=1"));
        assertTrue(scratch.evalLog().get(0).loss() > first.bestEvalLoss() + 0.05, "a fresh adapter starts higher");
    }

    /** The report's precision is true for every precision with full fine-tuning and with LoRA (the frozen base's dtype). */
    @Test
    void precisionFactsForEveryPrecisionAndMethod() {
        assertEquals("fp32", Trainable.precisionFacts(Precision.FP32, null));
        assertEquals("bf16 autocast, fp32 master weights", Trainable.precisionFacts(Precision.BF16, null));
        assertEquals("fp16 autocast with dynamic loss scaling, fp32 master weights", Trainable.precisionFacts(Precision.FP16, null));
        assertEquals("fp32, fp32 adapters on a frozen float32 base", Trainable.precisionFacts(Precision.FP32, ScalarType.Float));
        assertEquals("bf16 autocast, fp32 adapters on a frozen bfloat16 base", Trainable.precisionFacts(Precision.BF16, ScalarType.BFloat16));
        assertEquals("fp16 autocast with dynamic loss scaling, fp32 adapters on a frozen float16 base",
                Trainable.precisionFacts(Precision.FP16, ScalarType.Half));
    }

    /** save_total_limit as transformers' _rotate_checkpoints: the best moves to second-newest; limit 1 keeps best and newest. */
    @Test
    void rotationFollowsTransformers() {
        List<Path> cks = new ArrayList<>();
        for (int s : new int[] {2, 4, 6, 8}) cks.add(Path.of("out", "checkpoint-" + s));
        assertEquals(List.of(cks.get(1), cks.get(2)), CheckpointRotation.toDelete(cks, 1, 2L), "limit 1: best (2) and newest (8) kept");
        assertEquals(List.of(cks.get(0), cks.get(1), cks.get(2)), CheckpointRotation.toDelete(cks, 1, 8L), "limit 1, newest is best");
        assertEquals(List.of(cks.get(1), cks.get(2)), CheckpointRotation.toDelete(cks, 2, 2L), "limit 2: best and newest");
        assertEquals(List.of(cks.get(1)), CheckpointRotation.toDelete(cks, 3, 2L), "limit 3: best and the two newest");
        assertEquals(List.of(cks.get(0), cks.get(1)), CheckpointRotation.toDelete(cks, 2, null), "no best: the oldest go");
        assertEquals(List.of(), CheckpointRotation.toDelete(cks, null, 2L), "null keeps all");
    }

    /** Steps as transformers 4.55+ counts them: ceil(micro-batches / accumulation) per epoch, ceil(epochs × that). */
    @Test
    void stepsAreCountedAsTransformersCountsThem() throws IOException {
        TrainingPlan p = TrainingPlan.of(experiment("plan-a", "training.gradient_accumulation_steps=4", "training.num_train_epochs=2.5").training(), 29);
        assertEquals(8, p.stepsPerEpoch(), "7 full windows and one of 1 micro-batch");
        assertEquals(20, p.totalSteps(), "ceil(2.5 × 8)");
        TrainingPlan q = TrainingPlan.of(experiment("plan-b", "training.gradient_accumulation_steps=4", "training.max_steps=7",
                "training.warmup_ratio=0.1", "training.lr_scheduler_type=linear").training(), 29);
        assertEquals(7, q.totalSteps(), "max_steps wins");
        assertEquals(1, q.schedule().warmup(), "ceil(0.1 × 7)");
        assertEquals(1, TrainingPlan.of(experiment("plan-c", "training.gradient_accumulation_steps=8").training(), 3).stepsPerEpoch(),
                "fewer micro-batches than the accumulation: one step");
    }

    /** save_steps > 0 also saves at the last step, as transformers' DefaultFlowCallback does with save_strategy "steps". */
    @Test
    void saveStepsAlsoSavesTheLastStep() throws IOException {
        train(experiment("last-save", "training.max_steps=5", "training.save_steps=2", "training.save_total_limit=null",
                "training.load_best_model_at_end=false", "data.validation_split=0.0"));
        List<Long> steps = new ArrayList<>();
        for (Path p : Checkpoints.list(tmp.resolve("last-save"))) steps.add(Checkpoints.stepOf(p));
        assertEquals(List.of(2L, 4L, 5L), steps);
    }
}
