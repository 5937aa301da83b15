/**
 * Weight files: safetensors reading (memory-mapped) and writing, sharded weight directories, atomic file writes.
 * Internal: not a stable API.
 */
package dev.jtune.io;
