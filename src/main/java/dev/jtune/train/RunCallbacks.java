package dev.jtune.train;

import dev.jtune.api.TrainerCallback;
import dev.jtune.api.TrainerControl;
import dev.jtune.api.TrainerState;

import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.function.Supplier;

/**
 * The run's {@link TrainerCallback}s, told of each event in order, and the {@link TrainerControl} they share: the
 * training loop reads (and clears) the requests after each event that may make them.
 */
final class RunCallbacks implements TrainerControl {
    private final List<TrainerCallback> callbacks;
    private Supplier<TrainerState> state = () -> null;
    private String stop;
    private boolean evaluate, save;

    RunCallbacks(List<TrainerCallback> callbacks) {
        this.callbacks = List.copyOf(callbacks);
    }

    /** Where the snapshots of {@link TrainerState} come from (the loop, once it exists). */
    void stateFrom(Supplier<TrainerState> state) {
        this.state = state;
    }

    void trainBegin() {
        TrainerState s = state.get();
        for (TrainerCallback c : callbacks) c.onTrainBegin(s);
    }

    void stepEnd() {
        TrainerState s = state.get();
        for (TrainerCallback c : callbacks) c.onStepEnd(s, this);
    }

    void log(Map<String, Double> logs) {
        if (callbacks.isEmpty()) return;
        TrainerState s = state.get();
        for (TrainerCallback c : callbacks) c.onLog(s, new LinkedHashMap<>(logs), this);
    }

    void evaluate(Map<String, Double> metrics) {
        TrainerState s = state.get();
        for (TrainerCallback c : callbacks) c.onEvaluate(s, new LinkedHashMap<>(metrics), this);
    }

    void save(Path checkpoint) {
        TrainerState s = state.get();
        for (TrainerCallback c : callbacks) c.onSave(s, checkpoint);
    }

    void trainEnd() {
        TrainerState s = state.get();
        for (TrainerCallback c : callbacks) c.onTrainEnd(s);
    }

    @Override
    public void stopTraining(String reason) {
        if (stop == null) stop = reason == null || reason.isBlank() ? "stopped by a callback" : reason;
    }

    @Override
    public void evaluateNow() {
        evaluate = true;
    }

    @Override
    public void saveNow() {
        save = true;
    }

    /** The stop a callback asked for (kept: the run ends), or null. */
    String stopRequested() {
        return stop;
    }

    /** Whether a callback asked for an evaluation since the last call; clears the request. */
    boolean takeEvaluate() {
        boolean e = evaluate;
        evaluate = false;
        return e;
    }

    /** Whether a callback asked for a checkpoint since the last call; clears the request. */
    boolean takeSave() {
        boolean s = save;
        save = false;
        return s;
    }

}
