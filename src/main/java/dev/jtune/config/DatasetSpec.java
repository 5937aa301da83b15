package dev.jtune.config;

/**
 * One entry of {@code data.datasets}: a data file (or datasets.save_to_disk directory) in a mixture, its sampling
 * weight, and the format and column keys where they differ from the {@code data:} section's (null: the section's).
 *
 * @param path   the data file; relative to the working directory, like train_file
 * @param weight relative share of the mixture's training examples (LLaMA-Factory's interleave probabilities):
 *               examples are drawn from each dataset in proportion to weight, with the seed; a dataset whose share
 *               exceeds what it has is repeated
 */
public record DatasetSpec(
        @Key(Key.REQUIRED) java.nio.file.Path path,
        @Key(value = "null", nullable = true) DataSection.Format format,
        @Key("1.0") double weight,
        @Key(value = "null", nullable = true) String textColumn,
        @Key(value = "null", nullable = true) String promptColumn,
        @Key(value = "null", nullable = true) String responseColumn,
        @Key(value = "null", nullable = true) String messagesColumn,
        @Key(value = "null", nullable = true) String conversationsColumn,
        @Key(value = "null", nullable = true) String sharegptRoleKey,
        @Key(value = "null", nullable = true) String sharegptContentKey,
        @Key(value = "null", nullable = true) String instructionColumn,
        @Key(value = "null", nullable = true) String inputColumn,
        @Key(value = "null", nullable = true) String outputColumn,
        @Key(value = "null", nullable = true) String systemPrompt) implements Section {

    /** A mixture entry for {@code path} with weight 1 and every other key taken from the data section. */
    public static DatasetSpec of(java.nio.file.Path path, DataSection.Format format, double weight) {
        return new DatasetSpec(path, format, weight, null, null, null, null, null, null, null, null, null, null, null);
    }

    @Override
    public void validate(Problems p) {
        DataSection.file(p, "path", path);
        p.check(weight > 0 && Double.isFinite(weight), "weight", "must be a positive number (a relative share), got " + weight);
    }

    /** {@code data} as it applies to this dataset: its file as train_file, its format and column keys. */
    public DataSection applyTo(DataSection data) {
        return data.toBuilder().trainFile(path).datasets(null)
                .format(format != null ? format : data.format())
                .textColumn(or(textColumn, data.textColumn()))
                .promptColumn(or(promptColumn, data.promptColumn()))
                .responseColumn(or(responseColumn, data.responseColumn()))
                .messagesColumn(or(messagesColumn, data.messagesColumn()))
                .conversationsColumn(or(conversationsColumn, data.conversationsColumn()))
                .sharegptRoleKey(or(sharegptRoleKey, data.sharegptRoleKey()))
                .sharegptContentKey(or(sharegptContentKey, data.sharegptContentKey()))
                .instructionColumn(or(instructionColumn, data.instructionColumn()))
                .inputColumn(or(inputColumn, data.inputColumn()))
                .outputColumn(or(outputColumn, data.outputColumn()))
                .systemPrompt(or(systemPrompt, data.systemPrompt()))
                .build();
    }

    private static String or(String own, String section) {
        return own != null ? own : section;
    }
}
