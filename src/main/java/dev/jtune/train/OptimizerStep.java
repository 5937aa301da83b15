package dev.jtune.train;

import dev.jtune.config.Precision;
import dev.jtune.data.Batch;
import dev.jtune.dist.DataParallel;

import java.util.List;

/**
 * One optimizer step of a run, bound to what it updates: {@link TrainStep#run} over the trained tensors with the run's
 * optimizer, loss scaler, precision and clipping norm. The training loop calls {@link #run}; tests may wrap it (a
 * subclass made with the copy constructor, passed to the package-private Trainer constructor) to turn chosen steps'
 * losses into NaN, as a corrupt batch would.
 */
class OptimizerStep {
    final Trainable trained;
    final AdamW optimizer;
    final LossScaler scaler;
    final Precision precision;
    final double maxGradNorm;
    final ActivationCheckpointing.Settings checkpointing;
    /** {@code training.label_smoothing_factor}: the training loss is smoothed; evaluation scores the plain loss. */
    final double labelSmoothing;
    /** The other ranks of a data-parallel run ({@link DataParallel#NONE} in a single process). */
    DataParallel dp = DataParallel.NONE;
    /** What the step minimises ({@code training.method}); null: next-token cross-entropy with {@link #labelSmoothing}. */
    StepLoss loss;

    OptimizerStep(Trainable trained, AdamW optimizer, LossScaler scaler, Precision precision, double maxGradNorm) {
        this(trained, optimizer, scaler, precision, maxGradNorm, ActivationCheckpointing.Settings.OFF, 0.0);
    }

    OptimizerStep(Trainable trained, AdamW optimizer, LossScaler scaler, Precision precision, double maxGradNorm,
                  ActivationCheckpointing.Settings checkpointing, double labelSmoothing) {
        this.trained = trained;
        this.optimizer = optimizer;
        this.scaler = scaler;
        this.precision = precision;
        this.maxGradNorm = maxGradNorm;
        this.checkpointing = checkpointing;
        this.labelSmoothing = labelSmoothing;
    }

    /** For decorators: the same step, bound to the same objects. */
    OptimizerStep(OptimizerStep other) {
        this(other.trained, other.optimizer, other.scaler, other.precision, other.maxGradNorm, other.checkpointing, other.labelSmoothing);
        this.dp = other.dp;
        this.loss = other.loss;
    }

    /** One step over the micro-batches of one effective batch at learning rate {@code lr}. */
    TrainStep.Result run(List<Batch> micro, double lr) {
        return run(micro, lr, false);
    }

    /** @param nanLoss make the loss NaN before backward (for decorators that simulate a corrupt batch) */
    final TrainStep.Result run(List<Batch> micro, double lr, boolean nanLoss) {
        return TrainStep.run(trained.model, trained.parameters(), optimizer, scaler, precision, maxGradNorm, checkpointing,
                loss != null ? loss : StepLoss.causalLm(labelSmoothing), micro, lr, nanLoss, dp);
    }
}
