package dev.jtune.api;

import dev.jtune.cli.CliTest;
import dev.jtune.metrics.MetricsLog;
import dev.jtune.metrics.TrainPoint;
import dev.jtune.util.UserError;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The library API in this JVM, on the README's demo experiment with a tiny model: a run from the API and from
 * {@code jtune train} give the same losses bit for bit; callbacks see the logged values and can force an evaluation and
 * a checkpoint, and stop the run; evaluation and generation agree with {@code jtune eval} and {@code jtune generate}.
 * (ApiExampleIT runs the README's example program against the packaged jar.)
 */
class ApiTest {
    @TempDir
    static Path tmp;
    static Path base;

    @BeforeAll
    static void makeBaseModel() {
        base = tmp.resolve("base");
        CliTest.Run r = CliTest.run("init-model", "--arch", "llama", "--preset", "tiny", "--tokenizer", "configs/tokenizers/gpt2",
                "--out", base.toString(), "--seed", "1");
        assertEquals(0, r.code(), r.err());
    }

    /** The demo experiment on the tiny base, without generated answers (they are slow and not what is tested here). */
    static Experiment demo(Path out, String... more) {
        List<String> sets = new ArrayList<>(List.of("model.path=" + base, "training.output_dir=" + out,
                "training.predict_with_generate=false", "training.logging_steps=1"));
        sets.addAll(List.of(more));
        return Experiment.load(Path.of("configs/demo.yaml"), sets);
    }

    static PrintStream sink() {
        return new PrintStream(new ByteArrayOutputStream(), true, StandardCharsets.UTF_8);
    }

    @Test
    void apiAndCliRunsGiveBitIdenticalLosses() {
        Path cliOut = tmp.resolve("cli"), apiOut = tmp.resolve("api");
        CliTest.Run cli = CliTest.run("train", "configs/demo.yaml", "--set", "model.path=" + base, "--set", "training.output_dir=" + cliOut,
                "--set", "training.predict_with_generate=false", "--set", "training.logging_steps=1", "--set", "training.max_steps=4");
        assertEquals(0, cli.code(), cli.err());

        Map<Integer, Double> seen = new TreeMap<>();
        TrainResult r = Trainer.of(demo(apiOut).with("training.max_steps", 4))
                .console(sink())
                .callback(new TrainerCallback() {
                    @Override
                    public void onLog(TrainerState state, Map<String, Double> logs) {
                        if (logs.containsKey("loss")) seen.put(state.globalStep(), logs.get("loss"));
                    }
                })
                .train();

        Map<Integer, Double> fromCli = losses(cliOut), fromApi = losses(apiOut);
        assertEquals(List.of(1, 2, 3, 4), new ArrayList<>(fromCli.keySet()));
        assertEquals(fromCli, fromApi, "the same experiment from the API and from the CLI: the same losses, bit for bit");
        assertEquals(fromApi, seen, "callbacks get the values metrics.jsonl holds");
        assertEquals(fromApi, r.trainLosses());
        assertEquals(4, r.globalStep());
        assertEquals("max_steps reached", r.stopReason());
        assertEquals(apiOut.resolve("final"), r.finalModel());
        assertTrue(Files.isRegularFile(r.report()));
    }

    /** A callback forces an evaluation after step 1 and a checkpoint after step 2, and stops the run after step 3 (of 20). */
    @Test
    void callbacksCanForceEvaluationAndSaveAndStopTheRun() throws Exception {
        Path out = tmp.resolve("control");
        List<String> events = new ArrayList<>();
        List<Integer> saved = new ArrayList<>();
        TrainResult r = Trainer.of(demo(out, "lora.enabled=true", "lora.target_modules=all-linear").with("training.max_steps", 20))
                .console(sink())
                .callback(new TrainerCallback() {
                    @Override
                    public void onTrainBegin(TrainerState state) {
                        events.add("begin@" + state.globalStep() + "/" + state.maxSteps());
                    }

                    @Override
                    public void onStepEnd(TrainerState state, TrainerControl control) {
                        events.add("step@" + state.globalStep());
                        if (state.globalStep() == 1) control.evaluateNow();
                        if (state.globalStep() == 2) control.saveNow();
                        if (state.globalStep() == 3) control.stopTraining("enough for this test");
                    }

                    @Override
                    public void onEvaluate(TrainerState state, Map<String, Double> metrics, TrainerControl control) {
                        events.add("eval@" + state.globalStep());
                        assertTrue(metrics.get("eval_loss") > 0 && metrics.get("eval_perplexity") > 1, metrics.toString());
                    }

                    @Override
                    public void onSave(TrainerState state, Path checkpoint) {
                        saved.add(state.globalStep());
                        assertTrue(Files.isRegularFile(checkpoint.resolve("trainer_state.json")), checkpoint.toString());
                    }

                    @Override
                    public void onTrainEnd(TrainerState state) {
                        events.add("end@" + state.globalStep());
                    }
                })
                .train();
        assertEquals("enough for this test", r.stopReason());
        assertEquals(3, r.globalStep());
        assertEquals(List.of("begin@0/20", "step@1", "eval@1", "step@2", "step@3", "eval@3", "end@3"), events);
        assertEquals(List.of(1, 3), new ArrayList<>(r.evalLosses().keySet()), "the forced evaluation and the final one");
        assertTrue(saved.contains(2), "the forced checkpoint: " + saved);
        assertTrue(Files.isDirectory(out.resolve("checkpoint-2")));
        assertTrue(Files.isRegularFile(r.finalModel().resolve("adapter_config.json")), "LoRA: final/ is a PEFT adapter directory");

        // the adapter directory loads on its own (its base from adapter_config.json) and generates as `jtune generate` does
        String prompt = "What is overfitting?";
        StringBuilder streamed = new StringBuilder();
        String text;
        try (Model model = Model.load(r.finalModel())) {
            text = model.generate(prompt, Generation.greedy(8), streamed::append);
            assertEquals(text, streamed.toString(), "the streamed pieces make the returned text");
            String a = model.generate(prompt, Generation.sampling(8, 1.5, 0.9, 7));
            assertEquals(a, model.generate(prompt, Generation.sampling(8, 1.5, 0.9, 7)), "the same seed, the same sample");
        }
        CliTest.Run gen = CliTest.run("generate", "--model", base.toString(), "--adapter", r.finalModel().toString(),
                "--prompt", prompt, "--max-new-tokens", "8");
        assertEquals(0, gen.code(), gen.err());
        assertEquals(prompt + text + "\n", gen.out(), "the API's greedy text is the CLI's");

        // evaluation of the final model reproduces the run's test loss
        EvalResult e = Trainer.of(demo(out)).console(sink()).evaluate(r.finalModel());
        assertEquals(r.testLoss(), e.testLoss(), 1e-5);
        assertNotNull(e.validationLoss());
        assertEquals(Math.exp(e.testLoss()), e.testPerplexity(), 1e-12);
    }

    @Test
    void badKeysAndValuesAreUserErrorsNamingThem() {
        Experiment exp = demo(tmp.resolve("never"));
        UserError bad = assertThrows(UserError.class, () -> exp.with("training.learning_rat", 0.1));
        assertTrue(bad.getMessage().contains("learning_rat") && bad.getMessage().contains("learning_rate"), bad.getMessage());
        UserError range = assertThrows(UserError.class, () -> exp.with("training.learning_rate", -1));
        assertTrue(range.getMessage().contains("training.learning_rate"), range.getMessage());
        UserError type = assertThrows(UserError.class, () -> exp.with("training.max_steps", new Object()));
        assertTrue(type.getMessage().contains("training.max_steps"), type.getMessage());
        // values that would be YAML syntax stay strings
        Path odd = tmp.resolve("never/a: b # c");
        assertEquals(odd, exp.with("training.output_dir", odd).outputDir());
        assertThrows(UserError.class, () -> Trainer.of(exp).resume("auto").overwrite(true).train());
        assertThrows(UserError.class, () -> Model.load(tmp.resolve("nowhere")));
        assertThrows(UserError.class, () -> Generation.greedy(0));
        assertFalse(Files.exists(tmp.resolve("never")), "nothing written for refused settings");
    }

    static Map<Integer, Double> losses(Path runDir) {
        Map<Integer, Double> out = new TreeMap<>();
        for (TrainPoint p : MetricsLog.read(runDir.resolve("metrics.jsonl")).train()) out.put(Math.toIntExact(p.step()), p.loss());
        return out;
    }
}
