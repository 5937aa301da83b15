package dev.jtune.train;

import dev.jtune.train.checkpoint.Checkpoints;
import dev.jtune.train.checkpoint.RngStates;
import dev.jtune.train.optim.AdamW;
import dev.jtune.train.step.TrainStep;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.jtune.config.Experiment;
import dev.jtune.distributed.DistGroup;
import dev.jtune.distributed.ZeroSharding;

import java.nio.file.Path;
import java.util.List;
import java.util.Locale;

/**
 * Writes a run's checkpoints: one object that knows the step (weights, optimizer, loss scaler), the ranks and the ZeRO
 * sharding, so that the loop only says {@link #save}. Rank 0 writes (every rank holds the same weights and optimizer
 * state; under ZeRO stage 1 rank 0 first gathers the other ranks' optimizer shards, so the file is the one plain data
 * parallel writes), with every rank's random generators (they differ: see {@link RngStates}); the others wait for it.
 */
final class CheckpointWriter {
    private final TrainStep step;
    private final DistGroup group;
    private final Checkpoints checkpoints;
    private final Experiment exp;
    private final String chatTemplate;
    private final ObjectNode manifestBase;

    CheckpointWriter(TrainStep step, DistGroup group, Checkpoints checkpoints, Experiment exp, String chatTemplate, ObjectNode manifestBase) {
        this.step = step;
        this.group = group;
        this.checkpoints = checkpoints;
        this.exp = exp;
        this.chatTemplate = chatTemplate;
        this.manifestBase = manifestBase;
    }

    /**
     * Writes output_dir/checkpoint-{@code atStep} with {@code trainerState} as its trainer_state.json, then rotates the
     * older ones (save_total_limit; the best, trainer_state's {@code best_global_step}, always kept); returns the
     * directory once every rank has it.
     */
    Path save(long atStep, ObjectNode trainerState) {
        var rng = RngStates.gather(group, manifestBase.path("device").asText());
        ZeroSharding zero = step.dataParallel().zero();
        try (ZeroSharding.Gathered opt = zero == null ? new ZeroSharding.Gathered(step.optimizer().state(), List.of())
                : zero.gatherToMain(step.optimizer().state(), step.optimizer().allStateKeys(), AdamW::parameterOf)) {
            if (group.isMain()) {
                checkpoints.save(atStep, step.trained(), opt.state(), step.optimizer().stepCount(), step.scaler(), trainerState,
                        exp.model().path(), exp.model().tokenizer(), chatTemplate, exp.toYaml(), manifestBase, rng);
                checkpoints.rotate(trainerState.has("best_global_step") ? trainerState.get("best_global_step").asLong() : null);
            }
        }
        group.barrier(String.format(Locale.ROOT, "barrier after rank 0's checkpoint of step %d", atStep));
        return checkpoints.dirFor(atStep);
    }
}
