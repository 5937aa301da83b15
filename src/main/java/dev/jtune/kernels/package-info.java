/**
 * The op layer under the models: each fused op (RMSNorm, RoPE, SwiGLU, chunked cross-entropy, 4-bit dequantization)
 * runs as a CUDA kernel, an emulation of it, or plain LibTorch, as {@link dev.jtune.kernels.Ops} chooses. Internal: not
 * a stable API.
 */
package dev.jtune.kernels;
