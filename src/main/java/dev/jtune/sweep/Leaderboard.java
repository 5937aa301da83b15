package dev.jtune.sweep;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.jtune.config.Experiment;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.Locale;

/**
 * The sweep's results: DIR/leaderboard.csv and DIR/leaderboard.json (one row per trial: rank, parameters, the metric
 * at its last evaluation, status, steps, why it stopped) and DIR/best.yaml, the best trial's resolved experiment with
 * DIR/best/ as output directory, which {@code jtune train} runs as it is.
 *
 * <p>Ranking: complete trials by the metric (in the sweep's direction), then pruned ones (the further they got the
 * better, then by the metric), then failed ones and those not run yet. The best is the first complete trial, or the
 * first pruned one when none completed.
 */
final class Leaderboard {
    private static final ObjectMapper JSON = new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT);

    private Leaderboard() {}

    /** What was written, for the summary the command prints. */
    record Written(List<SweepState.Trial> ranked, SweepState.Trial best, String summary) {}

    static List<SweepState.Trial> rank(SweepState state) {
        boolean min = state.spec.minimize();
        Comparator<Double> byMetric = (a, b) -> {
            if (a == null || b == null) return a == null ? (b == null ? 0 : 1) : -1;
            return min ? Double.compare(a, b) : Double.compare(b, a);
        };
        Comparator<SweepState.Trial> order = Comparator.<SweepState.Trial>comparingInt(t -> switch (t.status) {
                    case COMPLETE -> 0;
                    case PRUNED -> 1;
                    case FAILED -> 2;
                    default -> 3;
                })
                .thenComparing(t -> t.status == SweepState.Status.PRUNED ? -t.steps : 0L)
                .thenComparing(t -> t.metric, byMetric)
                .thenComparingInt(t -> t.number);
        List<SweepState.Trial> out = new ArrayList<>(state.trials);
        out.sort(order);
        return out;
    }

    static Written write(Path dir, SweepState state) {
        List<SweepState.Trial> ranked = rank(state);
        List<String> keys = state.spec.params().stream().map(ParamSpec::key).toList();
        String metric = state.spec.metric();

        StringBuilder csv = new StringBuilder("rank,trial,status,").append(metric).append(",steps");
        for (String k : keys) csv.append(',').append(csvField(k));
        csv.append(",note\n");
        ObjectNode root = JSON.createObjectNode();
        root.put("metric", metric);
        root.put("direction", state.spec.direction().name().toLowerCase(Locale.ROOT));
        ArrayNode rows = root.putArray("trials");
        for (int i = 0; i < ranked.size(); i++) {
            SweepState.Trial t = ranked.get(i);
            csv.append(i + 1).append(',').append(t.number).append(',').append(t.status.label()).append(',')
               .append(t.metric == null ? "" : Double.toString(t.metric)).append(',').append(t.steps);
            for (String k : keys) csv.append(',').append(csvField(t.values.getOrDefault(k, "")));
            csv.append(',').append(csvField(t.note)).append('\n');
            ObjectNode o = rows.addObject();
            o.put("rank", i + 1);
            o.put("trial", t.number);
            o.put("status", t.status.label());
            if (t.metric == null) o.putNull(metric);
            else o.put(metric, t.metric);
            o.put("steps", t.steps);
            ObjectNode p = o.putObject("params");
            t.values.forEach(p::put);
            o.put("note", t.note);
            o.put("dir", dir.resolve(t.dirName()).toString());
        }
        SweepState.Trial best = ranked.stream().filter(t -> t.status == SweepState.Status.COMPLETE).findFirst()
                .orElse(ranked.stream().filter(t -> t.status == SweepState.Status.PRUNED).findFirst().orElse(null));
        if (best == null) root.putNull("best_trial");
        else root.put("best_trial", best.number);
        SweepFiles.write(dir.resolve("leaderboard.csv"), csv.toString());
        try {
            SweepFiles.write(dir.resolve("leaderboard.json"), JSON.writeValueAsString(root) + "\n");
        } catch (JsonProcessingException e) {
            throw new IllegalStateException(e);
        }
        StringBuilder summary = new StringBuilder();
        if (best != null && Files.isRegularFile(dir.resolve(best.dirName()).resolve("config.resolved.yaml"))) {
            writeBest(dir, best, metric);
            summary.append(String.format(Locale.ROOT, "best: trial %d (%s), %s %.4f: %s%ntrain it with: jtune train %s%n",
                    best.number, best.status.label(), metric, best.metric == null ? Double.NaN : best.metric,
                    SweepRunner.describe(best.values), dir.resolve("best.yaml")));
        } else {
            summary.append("no trial finished; no best.yaml\n");
        }
        return new Written(ranked, best, summary.toString());
    }

    /** The best trial's resolved experiment, re-read through the normal loader, with DIR/best/ as its output. */
    private static void writeBest(Path dir, SweepState.Trial best, String metric) {
        Path out = dir.resolve("best").toAbsolutePath().normalize();
        Experiment e = Experiment.load(dir.resolve(best.dirName()).resolve("config.resolved.yaml"),
                List.of("training.output_dir=" + quoted(out.toString()), "training.logging_dir=" + quoted(out.resolve("runs").toString())));
        String header = String.format(Locale.ROOT, "# jtune sweep: the best trial, %s (%s %s): %s%n", best.dirName(), metric,
                best.metric == null ? "none" : Double.toString(best.metric), SweepRunner.describe(best.values));
        SweepFiles.write(dir.resolve("best.yaml"), header + e.toYaml());
    }

    private static String quoted(String s) {
        try {
            return JSON.writeValueAsString(s);
        } catch (JsonProcessingException e) {
            throw new IllegalStateException(e);
        }
    }

    private static String csvField(String s) {
        if (s == null) return "";
        if (s.contains(",") || s.contains("\"") || s.contains("\n")) return "\"" + s.replace("\"", "\"\"") + "\"";
        return s;
    }
}
