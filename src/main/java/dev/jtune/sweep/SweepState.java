package dev.jtune.sweep;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.jtune.config.SweepSection;
import dev.jtune.util.UserError;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * DIR/sweep.json: the sweep's definition and every trial's values and fate, rewritten (atomically) whenever a trial
 * starts or ends. {@code jtune sweep --resume DIR} reads it back: finished trials are kept, a running one resumes
 * from its checkpoint, the rest run as planned.
 */
final class SweepState {
    static final String FILE = "sweep.json";
    private static final ObjectMapper JSON = new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT);

    enum Status { PENDING, RUNNING, COMPLETE, PRUNED, FAILED;

        String label() {
            return name().toLowerCase(Locale.ROOT);
        }

        boolean finished() {
            return this == COMPLETE || this == PRUNED || this == FAILED;
        }
    }

    /** One trial: its number (1-based), values, and what became of it. */
    static final class Trial {
        final int number;
        final Map<String, String> values;
        Status status = Status.PENDING;
        Double metric;   // the last evaluation's value; null when there was none
        long steps;
        String note = "";   // the stop reason or the failure

        Trial(int number, Map<String, String> values) {
            this.number = number;
            this.values = values;
        }

        String dirName() {
            return String.format(Locale.ROOT, "trial-%03d", number);
        }
    }

    final SweepSpec spec;
    final List<Trial> trials;

    SweepState(SweepSpec spec, List<Trial> trials) {
        this.spec = spec;
        this.trials = trials;
    }

    void write(Path dir) {
        ObjectNode root = JSON.createObjectNode();
        root.put("experiment", spec.experiment().toString());
        spec.sets().forEach(root.putArray("sets")::add);
        ArrayNode params = root.putArray("params");
        spec.params().forEach(p -> params.add(p.raw()));
        root.put("method", spec.method().name().toLowerCase(Locale.ROOT));
        if (spec.trials() != null) root.put("trials", spec.trials());
        root.put("prune", spec.prune().name().toLowerCase(Locale.ROOT));
        root.put("metric", spec.metric());
        root.put("direction", spec.direction().name().toLowerCase(Locale.ROOT));
        root.put("seed", spec.seed());
        root.put("eta", spec.eta());
        ArrayNode ts = root.putArray("trial_list");
        for (Trial t : trials) {
            ObjectNode o = ts.addObject();
            o.put("trial", t.number);
            ObjectNode v = o.putObject("params");
            t.values.forEach(v::put);
            o.put("status", t.status.label());
            if (t.metric != null) o.put("metric", t.metric);
            o.put("steps", t.steps);
            o.put("note", t.note);
        }
        try {
            SweepFiles.write(dir.resolve(FILE), JSON.writeValueAsString(root) + "\n");
        } catch (com.fasterxml.jackson.core.JsonProcessingException e) {
            throw new IllegalStateException(e);
        }
    }

    static SweepState read(Path dir) {
        Path file = dir.resolve(FILE);
        if (!Files.isRegularFile(file)) {
            throw new UserError("--resume " + dir + ": no " + FILE + " there; expected the --out directory of a jtune sweep");
        }
        try {
            JsonNode root = JSON.readTree(file.toFile());
            List<String> sets = new ArrayList<>();
            root.path("sets").forEach(n -> sets.add(n.asText()));
            List<ParamSpec> params = new ArrayList<>();
            root.path("params").forEach(n -> params.add(ParamSpec.parse(n.asText())));
            SweepSpec spec = new SweepSpec(Path.of(root.get("experiment").asText()), sets, params,
                    SweepSection.Method.valueOf(root.get("method").asText().toUpperCase(Locale.ROOT)),
                    root.has("trials") ? root.get("trials").asInt() : null,
                    SweepSection.Prune.valueOf(root.get("prune").asText().toUpperCase(Locale.ROOT)), root.get("metric").asText(),
                    SweepSection.Direction.valueOf(root.get("direction").asText().toUpperCase(Locale.ROOT)),
                    root.get("seed").asLong(), root.get("eta").asInt());
            List<Trial> trials = new ArrayList<>();
            for (JsonNode o : root.get("trial_list")) {
                Map<String, String> values = new LinkedHashMap<>();
                o.get("params").fields().forEachRemaining(e -> values.put(e.getKey(), e.getValue().asText()));
                Trial t = new Trial(o.get("trial").asInt(), values);
                t.status = Status.valueOf(o.get("status").asText().toUpperCase(Locale.ROOT));
                t.metric = o.has("metric") ? o.get("metric").asDouble() : null;
                t.steps = o.path("steps").asLong();
                t.note = o.path("note").asText();
                trials.add(t);
            }
            return new SweepState(spec, trials);
        } catch (IOException | RuntimeException e) {
            if (e instanceof UserError u) throw u;
            throw new UserError(file + ": not a sweep state jtune wrote (" + e.getMessage() + ")", e);
        }
    }
}
