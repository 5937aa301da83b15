/**
 * 4-bit bases for QLoRA: NF4 and FP4 as bitsandbytes stores them (with double quantization), quantizing a model at
 * load, and the quantized projection LoRA trains over. Internal: not a stable API.
 */
package dev.jtune.quant;
