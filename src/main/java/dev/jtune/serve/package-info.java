/**
 * {@code jtune serve}: an OpenAI-compatible HTTP server with continuous batching, several LoRA adapters over one base,
 * and Prometheus metrics. Internal: not a stable API.
 */
package dev.jtune.serve;
