/**
 * The Llama family (Llama, Mistral, Qwen2, Qwen3: RMSNorm, RoPE, grouped-query attention, SwiGLU MLP). Internal: not a
 * stable API.
 */
package dev.jtune.model.llama;
