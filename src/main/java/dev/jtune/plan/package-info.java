/**
 * {@code jtune plan}: a training run's memory predicted before it starts (weights, gradients, optimizer state,
 * activations) against the device's memory. Internal: not a stable API.
 */
package dev.jtune.plan;
