/**
 * jtune as a Java library: the only package whose types are a stable API. Everything else in {@code dev.jtune} is
 * internal (public where the CLI and the other packages need it) and may change in any release.
 *
 * <p>The types: {@link dev.jtune.api.Experiment} (an experiment file with overrides, validated as the CLI does),
 * {@link dev.jtune.api.Trainer} (a run, returning a {@link dev.jtune.api.TrainResult}; also evaluation into an
 * {@link dev.jtune.api.EvalResult}), {@link dev.jtune.api.TrainerCallback} with {@link dev.jtune.api.TrainerState} and
 * {@link dev.jtune.api.TrainerControl} (transformers' callback events), and {@link dev.jtune.api.Model} (a model or
 * PEFT adapter directory) with {@link dev.jtune.api.Generation} and {@link dev.jtune.api.TokenListener} for
 * generation.
 *
 * <pre>{@code
 * Experiment exp = Experiment.load(Path.of("configs/demo.yaml")).with("training.max_steps", 4);
 * TrainResult result = Trainer.of(exp).train();
 * try (Model model = Model.load(result.finalModel())) {
 *     String text = model.generate("What is overfitting?", Generation.greedy(8));
 * }
 * }</pre>
 *
 * <p>Mistakes in files and settings are {@link dev.jtune.util.UserError}s (unchecked) whose message names the file,
 * the line or the key and what was expected.
 *
 * <p>Natives: {@link dev.jtune.api.Trainer#of} and {@link dev.jtune.api.Model#load} load jtune's own LibTorch (2.10,
 * from the Bytedeco preset) by path before anything else can pick up another one from the linker path. An application
 * that already loaded a different LibTorch in the same JVM gets a UserError naming both libraries: run jtune in its
 * own JVM then.
 */
package dev.jtune.api;
