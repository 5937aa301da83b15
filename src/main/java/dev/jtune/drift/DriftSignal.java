package dev.jtune.drift;

/**
 * One drift measure: its value on the new data, the same measure's baseline (the run's test split, or its test
 * scores), the threshold past which it counts as drift, and which way is bad.
 *
 * @param higherIsWorse true when values above the threshold are drift (loss, divergence), false when below (scores)
 */
public record DriftSignal(String name, String description, double value, double baseline, double threshold, boolean higherIsWorse) {
    public boolean crossed() {
        if (Double.isNaN(value) || Double.isNaN(threshold)) return false;
        return higherIsWorse ? value > threshold : value < threshold;
    }
}
