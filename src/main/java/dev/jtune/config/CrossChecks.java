package dev.jtune.config;

import java.util.List;

/**
 * Checks that involve more than one section and nothing but the settings: no files are read, so the same
 * experiment always gives the same answer. Checks against the model's config.json are {@link ModelChecks}.
 */
final class CrossChecks {
    private CrossChecks() {}

    /** Reports every problem to {@code p} (keys are dotted: {@code training.save_steps}). */
    static void check(DataSection d, TrainingSection t, Problems p) {
        earlyStopping(d, t, p);
        bestModelNeedsCheckpointsWhenEvaluating(d, t, p);
        generationNeedsPromptsAndAnswers(d, t, p);
    }

    /** Text rows are documents: there is no prompt to answer and no reference answer to score against. */
    private static void generationNeedsPromptsAndAnswers(DataSection d, TrainingSection t, Problems p) {
        if (!t.predictWithGenerate() || !p.ok("training.predict_with_generate", "data.format")) return;
        p.check(d.format() != DataSection.Format.TEXT, "training.predict_with_generate",
                "generated answers need instruction or chat data, which split each row into a prompt and a reference "
                        + "answer; data.format is text (plain documents, no prompt/answer split). Use data.format: "
                        + "instruction or chat, or set predict_with_generate: false", "data.format");
    }

    private static void earlyStopping(DataSection d, TrainingSection t, Problems p) {
        if (t.earlyStoppingPatience() == null || !p.ok("training.early_stopping_patience")) return;
        if (p.ok("data.validation_file", "data.validation_split") && !d.hasValidation()) {
            p.add("training.early_stopping_patience", "early stopping needs validation data, but data.validation_file "
                    + "is null and data.validation_split is 0");
        } else {
            p.check(t.loadBestModelAtEnd(), "training.early_stopping_patience",
                    "early stopping needs training.load_best_model_at_end: true (as Hugging Face's EarlyStoppingCallback)",
                    "training.load_best_model_at_end");
        }
    }

    /** load_best_model_at_end can only load a checkpoint saved at an evaluation. */
    private static void bestModelNeedsCheckpointsWhenEvaluating(DataSection d, TrainingSection t, Problems p) {
        boolean validation = p.ok("data.validation_file", "data.validation_split") && d.hasValidation();
        if (!validation || !t.loadBestModelAtEnd()
                || !p.ok("training.load_best_model_at_end", "training.eval_steps", "training.save_steps")) {
            return;
        }
        int ev = t.evalSteps(), sv = t.saveSteps();
        boolean aligned = ev == 0 ? sv == 0 : sv > 0 && sv % ev == 0;
        if (!aligned) {
            p.add("training.save_steps", "with load_best_model_at_end, checkpoints must be saved when evaluating: "
                    + "save_steps (" + sv + ") must be a multiple of eval_steps (" + ev + "), both 0 meaning each epoch; "
                    + "or set load_best_model_at_end: false");
        }
    }

    /**
     * Preference tuning: the method and the data format go together, each method reads only its own keys of the
     * {@code preference:} section (a key of another method exits 2 naming it), and what preference steps do not do is
     * refused rather than silently ignored.
     */
    static void preference(DataSection d, TrainingSection t, PreferenceSection pref, Problems p) {
        if (t.method() == null || !p.ok("training.method")) return;
        TrainingSection.Method m = t.method();
        String name = PreferenceSection.name(m);
        for (String key : pref.setKeys()) {
            if (!p.ok("preference." + key)) continue;
            List<String> reads = PreferenceSection.keysOf(m);
            if (!reads.contains(key)) {
                p.add("preference." + key, "is not a setting of training.method " + name + (reads.isEmpty()
                        ? " (supervised fine-tuning reads no preference key); set training.method to dpo, orpo, kto or simpo, or remove it"
                        : "; " + name + " reads: " + String.join(", ", reads)));
            }
        }
        if (d.format() != null && p.ok("data.format")) {
            DataSection.Format want = m == TrainingSection.Method.KTO ? DataSection.Format.KTO
                    : m.preference() ? DataSection.Format.PREFERENCE : null;
            boolean prefFormat = d.format() == DataSection.Format.PREFERENCE || d.format() == DataSection.Format.KTO;
            if (want == null && prefFormat) {
                p.add("data.format", "is " + d.format().name().toLowerCase(java.util.Locale.ROOT) + " (preference data), but "
                        + "training.method is sft; set training.method to " + (d.format() == DataSection.Format.KTO ? "kto" : "dpo, orpo or simpo"));
            } else if (want != null && d.format() != want) {
                p.add("data.format", "training.method " + name + " trains on " + want.name().toLowerCase(java.util.Locale.ROOT)
                        + " data (" + (want == DataSection.Format.KTO ? "prompt, completion and label columns"
                        : "prompt, chosen and rejected columns") + "); set data.format: " + want.name().toLowerCase(java.util.Locale.ROOT));
            }
        }
        if (!m.preference()) {
            p.check(t.bestModelMetric().equals("loss") || !p.ok("training.metric_for_best_model"), "training.metric_for_best_model",
                    "the reward metrics exist for preference methods only (training.method dpo, orpo, kto or simpo); use loss", "training.method");
            return;
        }
        if (m == TrainingSection.Method.KTO && t.bestModelMetric().equals("rewards/accuracies")) {
            p.add("training.metric_for_best_model", "KTO logs no rewards/accuracies (its examples are not pairs); use rewards/margins or loss");
        }
        p.check(!d.packing(), "data.packing", "preference tuning scores whole sequences per row, so rows cannot be packed; "
                + "set data.packing: false", "training.method");
        p.check(t.labelSmoothingFactor() == 0, "training.label_smoothing_factor", "applies to supervised fine-tuning only; "
                + "preference methods have preference.label_smoothing (dpo, simpo)", "training.method");
        p.check(!t.predictWithGenerate(), "training.predict_with_generate", "generated answers are scored for supervised "
                + "fine-tuning only; the preference metrics (rewards/accuracies, margins) are logged instead", "training.method");
        if (m == TrainingSection.Method.KTO && p.ok("training.per_device_train_batch_size")) {
            p.check(t.perDeviceTrainBatchSize() > 1, "training.per_device_train_batch_size", "KTO estimates its KL term from "
                    + "mismatched prompt/completion pairs within a batch, so the batch needs at least 2 rows (TRL refuses 1 too)");
        }
    }

    /**
     * A 4-bit base is frozen: only adapters can train on it (QLoRA). Full fine-tuning would need every weight in 16/32
     * bits with its gradient and optimizer state, which is what quantizing the base avoids.
     */
    static void quantizedBase(ModelSection m, LoraSection l, Problems p) {
        if (!m.fourBit() || l.enabled() || !p.ok("model.quantization.load_in_4bit", "lora.enabled")) return;
        boolean implied = m.path() != null && dev.jtune.quant.QuantizedCheckpoint.isQuantized(m.path());
        p.add(implied ? "model.path" : "model.quantization.load_in_4bit",
                (implied ? "is a 4-bit checkpoint (its config.json has a quantization_config), so the base is 4-bit; "
                        : "a 4-bit base ")
                + "cannot be fully fine-tuned: its weights are frozen 4-bit codes with no gradient, and training them would "
                + "need the 16-bit weights, their gradients and optimizer state (what quantizing avoids). Set lora.enabled: "
                + "true to train LoRA adapters on it (QLoRA)" + (implied ? ", or fine-tune the 16-bit model it came from" : ", or load_in_4bit: false"));
    }
}
