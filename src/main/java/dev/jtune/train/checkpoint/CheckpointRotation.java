package dev.jtune.train.checkpoint;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/**
 * Which checkpoints {@code save_total_limit} deletes, as transformers' {@code Trainer._sorted_checkpoints} and
 * {@code _rotate_checkpoints} decide: oldest first, except that the best checkpoint is moved to the second-newest
 * place (so it survives), and with a limit of 1 and a best that is not the newest, two are kept (the best and the
 * newest, "to allow resuming").
 */
public final class CheckpointRotation {
    private CheckpointRotation() {}

    /**
     * @param sorted   checkpoint directories, oldest step first
     * @param limit    save_total_limit; null keeps all
     * @param bestStep the best checkpoint's step, or null
     * @return the directories to delete
     */
    public static List<Path> toDelete(List<Path> sorted, Integer limit, Long bestStep) {
        if (limit == null || limit <= 0) return List.of();
        List<Path> order = new ArrayList<>(sorted);
        int best = -1;
        for (int i = 0; i < order.size(); i++) if (bestStep != null && Checkpoints.stepOf(order.get(i)) == bestStep) best = i;
        if (best >= 0) {
            for (int i = best; i < order.size() - 2; i++) {
                Path a = order.get(i);
                order.set(i, order.get(i + 1));
                order.set(i + 1, a);
            }
        }
        if (order.size() <= limit) return List.of();
        int keep = limit;
        if (best >= 0 && limit == 1 && Checkpoints.stepOf(order.get(order.size() - 1)) != bestStep) keep = 2;
        return List.copyOf(order.subList(0, Math.max(0, order.size() - keep)));
    }
}
