/**
 * Generation from a causal LM: greedy and sampled decoding with a KV cache ({@link dev.jtune.infer.TextGenerator}),
 * batched decoding, perplexity. {@link dev.jtune.api.Model} is the stable face of this package. Internal: not a stable
 * API.
 */
package dev.jtune.infer;
