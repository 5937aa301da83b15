/**
 * {@code jtune export}: a model or LoRA adapter as a GGUF file for llama.cpp and Ollama (f32/f16/bf16 and the Q8_0,
 * Q4_0, Q5_0, Q4_K, Q6_K quantizations), with llama.cpp's tensor names and metadata. Internal: not a stable API.
 */
package dev.jtune.export;
