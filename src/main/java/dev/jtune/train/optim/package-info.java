/**
 * The optimizer side of a training step: {@link dev.jtune.train.optim.AdamW} (torch.optim.AdamW's update, fused or per
 * tensor, sharded under ZeRO stage 1), {@link dev.jtune.train.optim.LrSchedule} (transformers' schedulers with warmup)
 * and {@link dev.jtune.train.optim.LossScaler} (fp16 dynamic loss scaling, as torch.amp.GradScaler). Internal: not a
 * stable API.
 */
package dev.jtune.train.optim;
