/**
 * Training data: reading rows (CSV, JSON Lines, Parquet, Arrow; alpaca, sharegpt and chat formats), cleaning, the
 * seeded split, chat templates and loss masks, tokenised examples ({@link dev.jtune.data.PreparedData}) with their
 * cache, and batching ({@link dev.jtune.data.Batcher}: shuffle, DistributedSampler shards, padding or packing).
 * Internal: not a stable API.
 */
package dev.jtune.data;
