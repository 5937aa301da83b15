package dev.jtune.train.checkpoint;

import dev.jtune.config.TrainingSection;
import dev.jtune.util.UserError;

import java.io.IOException;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

/**
 * The policy for {@code output_dir}: a run never silently overwrites another run's outputs. {@code --resume auto}
 * picks the newest checkpoint that verifies, {@code --resume DIR} that one (refused by name when damaged), and
 * {@code --overwrite} deletes what jtune wrote there, and nothing else. Runs before any data or model work.
 */
public final class OutputDir {
    private OutputDir() {}

    /**
     * @param resume null (a new run), "auto" or a checkpoint directory
     * @return the checkpoint to resume from, or null for a new run
     */
    public static Path prepare(TrainingSection t, String resume, boolean overwrite, PrintStream out) {
        Path dir = t.outputDir();
        if (resume != null) return resumeFrom(dir, resume, out);
        List<Path> existing = Checkpoints.list(dir);
        boolean hasOutputs = !existing.isEmpty() || Files.exists(dir.resolve("final")) || Files.exists(dir.resolve("metrics.jsonl"));
        if (hasOutputs && !overwrite) {
            throw new UserError("training.output_dir " + dir + " holds the outputs of an earlier run"
                    + (existing.isEmpty() ? "" : " (" + existing.get(existing.size() - 1).getFileName() + ")")
                    + "; continue it with --resume auto, or start over with --overwrite (deletes only what jtune wrote there)");
        }
        if (hasOutputs) deleteOwnOutputs(dir, t.loggingDir());
        return null;
    }

    private static Path resumeFrom(Path dir, String resume, PrintStream out) {
        if (resume.equals("auto")) {
            Path found = Checkpoints.latestGood(dir, out);
            if (found == null) out.println("resume: no complete checkpoint in " + dir + "; starting from the beginning");
            else out.println("resume: continuing from " + found);
            return found;
        }
        Path ck = Path.of(resume);
        if (!Files.isDirectory(ck)) throw new UserError("--resume: " + ck + " is not a checkpoint directory");
        List<String> problems = Checkpoints.verify(ck);
        if (!problems.isEmpty()) {
            throw new UserError("--resume: " + ck + " cannot be trusted: " + String.join("; ", problems)
                    + " (--resume auto falls back to the newest intact checkpoint)");
        }
        out.println("resume: continuing from " + ck);
        return ck;
    }

    /** What jtune writes into an output directory, and nothing else. */
    private static void deleteOwnOutputs(Path dir, Path loggingDir) {
        try {
            for (Path ck : Checkpoints.list(dir)) Checkpoints.deleteTree(ck);
            Checkpoints.deleteTree(dir.resolve("final"));
            for (String f : new String[] {"metrics.jsonl", "report.html", "config.resolved.yaml"}) Files.deleteIfExists(dir.resolve(f));
            try (var s = Files.list(dir)) {
                for (Path p : s.toList()) if (p.getFileName().toString().matches("\\.checkpoint-\\d+\\.tmp")) Checkpoints.deleteTree(p);
            }
            if (Files.isDirectory(loggingDir)) {
                try (var s = Files.list(loggingDir)) {
                    for (Path p : s.toList()) if (p.getFileName().toString().startsWith("events.out.tfevents.")) Files.delete(p);
                }
            }
        } catch (IOException e) {
            throw new UserError(dir + ": cannot clear the earlier run's outputs: " + e.getMessage(), e);
        }
    }
}
