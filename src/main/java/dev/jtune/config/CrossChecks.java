package dev.jtune.config;

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
