/** The GPT-2 architecture (learned positions, LayerNorm, GELU MLP, tied head). Internal: not a stable API. */
package dev.jtune.model.gpt2;
