/**
 * {@code jtune bench}: the speed and memory of one training step ({@link dev.jtune.bench.BenchRunner}, built by the
 * trainer's own step factory), of decoding ({@link dev.jtune.bench.DecodeBench}), with the measured GEMM peak, the
 * device facts and the FLOP counts they are compared with. Internal: not a stable API.
 */
package dev.jtune.bench;
