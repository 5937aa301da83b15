/**
 * LoRA: the adapters on a model's projections, which modules they target, PEFT adapter directories (read and
 * written as Hugging Face PEFT does), and merging adapters into the base weights. Internal: not a stable API.
 */
package dev.jtune.peft;
