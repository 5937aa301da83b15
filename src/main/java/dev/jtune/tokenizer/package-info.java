/**
 * Hugging Face tokenizers: {@link dev.jtune.tokenizer.HfTokenizer} loads a model or tokenizer directory
 * (tokenizer.json through DJL's binding of the Rust {@code tokenizers} library, plus the JSON files that name the
 * special tokens and the chat template); {@link dev.jtune.tokenizer.StreamingDecoder} turns generated ids into text
 * without splitting characters.
 *
 * <p>DJL 0.38.0 notes (from its bytecode): it is forced offline here ({@code ai.djl.offline=true},
 * {@code OPT_OUT_TRACKING=true}) because otherwise it downloads a CUDA build of the native library on GPU machines
 * and pings the EC2 metadata service and a telemetry URL on each tokenizer creation. The CPU library bundled in the
 * jar is extracted once to {@code ~/.djl.ai/tokenizers/0.21.0-0.38.0-cpu-linux-x86_64/} ({@code DJL_CACHE_DIR}
 * moves it). Truncation is off (DJL's default cuts at 512 silently) and so is padding.
 *
 * <p>Internal: not a stable API.
 */
package dev.jtune.tokenizer;
