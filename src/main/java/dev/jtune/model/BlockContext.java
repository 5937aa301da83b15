package dev.jtune.model;

import org.bytedeco.pytorch.Tensor;

/**
 * What every decoder block of one forward pass shares, computed once by {@link CausalLM#context}: the positions,
 * the attention mask, the KV cache and, for rotary models, the cos/sin tables. A block needs nothing else, so
 * blocks can be run one at a time (and run again, for activation checkpointing) with the same context.
 *
 * @param batch         B
 * @param length        T, the new tokens of this pass
 * @param past          tokens already in the cache (0 without one)
 * @param positionIds   (B, T) int64
 * @param attentionMask bool (B, 1, T, S) or (T, S), true where a query may attend a key; or null for plain causal
 *                      attention (S = past + T)
 * @param cache         past keys/values each block appends to; or null
 * @param cos           (B, 1, T, hd) rotary tables in the model's dtype, or null (GPT-2)
 * @param sin           as cos
 */
public record BlockContext(long batch, long length, long past, Tensor positionIds, Tensor attentionMask, KvCache cache,
                           Tensor cos, Tensor sin) {}
