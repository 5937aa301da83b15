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
}
