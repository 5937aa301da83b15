/**
 * Causal LMs on LibTorch: {@link dev.jtune.model.CausalLM} with its config, loading from and writing to Hugging Face
 * model directories, initialisation, RoPE and the frozen-linear seam that LoRA and 4-bit bases plug into. Internal: not
 * a stable API.
 */
package dev.jtune.model;
