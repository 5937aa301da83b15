package dev.jtune.config;

import java.nio.file.Files;
import java.nio.file.Path;

/**
 * The {@code data:} section: where the examples come from and how they become token sequences.
 *
 * <p>Paths are absolute: relative paths in the file resolve against the working directory (as in Hugging Face
 * scripts and axolotl), not against the experiment file's directory.
 *
 * @param trainFile           training examples; required
 * @param validationFile      evaluation examples; null to split them off {@code trainFile} by {@code validationSplit}
 * @param testFile            held-out examples evaluated once after training; null to split by {@code testSplit}
 * @param format              {@code text} (one column of text), {@code instruction} (prompt and response columns)
 *                            or {@code chat} (a column of role/content messages); for preference tuning
 *                            {@code preference} (prompt, chosen and rejected columns) or {@code kto} (prompt, completion, label)
 * @param validationSplit     fraction of {@code trainFile} held out for validation; used only without validationFile
 * @param testSplit           fraction of {@code trainFile} held out for testing; used only without testFile
 * @param maxSeqLength        tokens per training sequence
 * @param packing             concatenate examples into full {@code maxSeqLength} sequences
 * @param trainOnInputs       also compute the loss on prompt (and system/user) tokens, not only on responses
 * @param onBadRow            what to do with a row that cannot be read (missing column, bad JSON)
 * @param onLongRow           what to do with an example longer than {@code maxSeqLength}
 * @param normalizeWhitespace clean up whitespace in the text before tokenizing (the data reader defines how)
 * @param dropDuplicates      drop exact duplicate examples (after normalisation)
 * @param conversationsColumn {@code sharegpt}: the column holding the list of turns
 * @param sharegptRoleKey     {@code sharegpt}: the key of a turn's speaker (human, gpt, system, tool)
 * @param sharegptContentKey  {@code sharegpt}: the key of a turn's text
 * @param instructionColumn   {@code alpaca}: the task
 * @param inputColumn         {@code alpaca}: optional context appended to the instruction (may be absent or empty)
 * @param outputColumn        {@code alpaca}: the response
 * @param datasets            a mixture instead of {@code trainFile}: files with weights, formats and column keys
 * @param cacheDir            where tokenized data is cached; null for jtune's directory under the user's cache
 */
public record DataSection(
        @Key(value = "null", nullable = true) Path trainFile,
        @Key(value = "null", nullable = true) Path validationFile,
        @Key(value = "null", nullable = true) Path testFile,
        @Key("text") Format format,
        @Key("text") String textColumn,
        @Key("prompt") String promptColumn,
        @Key("response") String responseColumn,
        @Key("messages") String messagesColumn,
        @Key(value = "null", nullable = true) String systemPrompt,
        @Key("0.1") double validationSplit,
        @Key("0.0") double testSplit,
        @Key("512") int maxSeqLength,
        @Key("false") boolean packing,
        @Key("false") boolean trainOnInputs,
        @Key("skip") OnBadRow onBadRow,
        @Key("truncate") OnLongRow onLongRow,
        @Key("true") boolean normalizeWhitespace,
        @Key("true") boolean dropDuplicates,
        @Key("conversations") String conversationsColumn,
        @Key("from") String sharegptRoleKey,
        @Key("value") String sharegptContentKey,
        @Key("instruction") String instructionColumn,
        @Key("input") String inputColumn,
        @Key("output") String outputColumn,
        @Key(value = "null", nullable = true) java.util.List<DatasetSpec> datasets,
        @Key(value = "null", nullable = true) Path cacheDir) implements Section {

    /**
     * How a row becomes an example. {@code sharegpt}: a column of {from, value} turns (human/gpt/system/tool);
     * {@code alpaca}: instruction + optional input as the prompt, output as the response.
     * {@code preference}: prompt, chosen and rejected columns; {@code kto}: prompt, completion and label
     * (both for preference tuning, read by PreferenceRows).
     */
    public enum Format { TEXT, INSTRUCTION, CHAT, SHAREGPT, ALPACA, PREFERENCE, KTO }

    public enum OnBadRow { SKIP, FAIL }

    public enum OnLongRow { TRUNCATE, DROP }

    /** The smallest {@code max_seq_length} accepted. */
    public static final int MIN_SEQ_LENGTH = 8;

    /**
     * The training sources: this section itself for a single train_file, else one section per mixture entry
     * (its file as train_file, its format and column keys, every other key from this section).
     */
    public java.util.List<DataSection> sources() {
        if (datasets == null) return java.util.List.of(this);
        return datasets.stream().map(s -> s.applyTo(this)).toList();
    }

    /** What trains, for messages: the train file, or the mixture's files. */
    public String describeTraining() {
        if (datasets == null) return String.valueOf(trainFile);
        return "data.datasets (" + datasets.stream().map(x -> String.valueOf(x.path().getFileName()))
                .collect(java.util.stream.Collectors.joining(", ")) + ")";
    }

    /** The sampling weight of each of {@link #sources()}: 1 for a single train_file. */
    public java.util.List<Double> weights() {
        if (datasets == null) return java.util.List.of(1.0);
        return datasets.stream().map(DatasetSpec::weight).toList();
    }

    /** The validation fraction that applies: {@code validationSplit}, or 0 when a validation file is given. */
    public double effectiveValidationSplit() {
        return validationFile == null ? validationSplit : 0.0;
    }

    /** The test fraction that applies: {@code testSplit}, or 0 when a test file is given. */
    public double effectiveTestSplit() {
        return testFile == null ? testSplit : 0.0;
    }

    /** Whether there is anything to evaluate on (a validation file or a non-zero split). */
    public boolean hasValidation() {
        return validationFile != null || validationSplit > 0;
    }

    /**
     * A data section as a file that sets only {@code train_file} gives: every other key at its default (the
     * {@link Key} annotations above). Change keys by name: {@code DataSection.builder(f).format(Format.CHAT)
     * .maxSeqLength(256).build()}. Not validated; {@link Experiment#load} validates what users write.
     */
    public static Builder builder(Path trainFile) {
        return SectionBinder.defaults(DataSection.class).toBuilder().trainFile(trainFile);
    }

    /** A builder holding these values, to change some of them by name. */
    public Builder toBuilder() {
        return new Builder(this);
    }

    /** Named options for a {@link DataSection}; each setter is the key of the same (camelCase) name. */
    public static final class Builder {
        private Path trainFile;
        private Path validationFile;
        private Path testFile;
        private Format format;
        private String textColumn;
        private String promptColumn;
        private String responseColumn;
        private String messagesColumn;
        private String systemPrompt;
        private double validationSplit;
        private double testSplit;
        private int maxSeqLength;
        private boolean packing;
        private boolean trainOnInputs;
        private OnBadRow onBadRow;
        private OnLongRow onLongRow;
        private boolean normalizeWhitespace;
        private boolean dropDuplicates;
        private String conversationsColumn;
        private String sharegptRoleKey;
        private String sharegptContentKey;
        private String instructionColumn;
        private String inputColumn;
        private String outputColumn;
        private java.util.List<DatasetSpec> datasets;
        private Path cacheDir;

        private Builder(DataSection d) {
            trainFile = d.trainFile;
            validationFile = d.validationFile;
            testFile = d.testFile;
            format = d.format;
            textColumn = d.textColumn;
            promptColumn = d.promptColumn;
            responseColumn = d.responseColumn;
            messagesColumn = d.messagesColumn;
            systemPrompt = d.systemPrompt;
            validationSplit = d.validationSplit;
            testSplit = d.testSplit;
            maxSeqLength = d.maxSeqLength;
            packing = d.packing;
            trainOnInputs = d.trainOnInputs;
            onBadRow = d.onBadRow;
            onLongRow = d.onLongRow;
            normalizeWhitespace = d.normalizeWhitespace;
            dropDuplicates = d.dropDuplicates;
            conversationsColumn = d.conversationsColumn;
            sharegptRoleKey = d.sharegptRoleKey;
            sharegptContentKey = d.sharegptContentKey;
            instructionColumn = d.instructionColumn;
            inputColumn = d.inputColumn;
            outputColumn = d.outputColumn;
            datasets = d.datasets;
            cacheDir = d.cacheDir;
        }

        public Builder trainFile(Path v) {
            trainFile = v;
            return this;
        }

        public Builder validationFile(Path v) {
            validationFile = v;
            return this;
        }

        public Builder testFile(Path v) {
            testFile = v;
            return this;
        }

        public Builder format(Format v) {
            format = v;
            return this;
        }

        public Builder textColumn(String v) {
            textColumn = v;
            return this;
        }

        public Builder promptColumn(String v) {
            promptColumn = v;
            return this;
        }

        public Builder responseColumn(String v) {
            responseColumn = v;
            return this;
        }

        public Builder messagesColumn(String v) {
            messagesColumn = v;
            return this;
        }

        public Builder systemPrompt(String v) {
            systemPrompt = v;
            return this;
        }

        public Builder validationSplit(double v) {
            validationSplit = v;
            return this;
        }

        public Builder testSplit(double v) {
            testSplit = v;
            return this;
        }

        public Builder maxSeqLength(int v) {
            maxSeqLength = v;
            return this;
        }

        public Builder packing(boolean v) {
            packing = v;
            return this;
        }

        public Builder trainOnInputs(boolean v) {
            trainOnInputs = v;
            return this;
        }

        public Builder onBadRow(OnBadRow v) {
            onBadRow = v;
            return this;
        }

        public Builder onLongRow(OnLongRow v) {
            onLongRow = v;
            return this;
        }

        public Builder normalizeWhitespace(boolean v) {
            normalizeWhitespace = v;
            return this;
        }

        public Builder dropDuplicates(boolean v) {
            dropDuplicates = v;
            return this;
        }

        public Builder conversationsColumn(String v) {
            conversationsColumn = v;
            return this;
        }

        public Builder sharegptRoleKey(String v) {
            sharegptRoleKey = v;
            return this;
        }

        public Builder sharegptContentKey(String v) {
            sharegptContentKey = v;
            return this;
        }

        public Builder instructionColumn(String v) {
            instructionColumn = v;
            return this;
        }

        public Builder inputColumn(String v) {
            inputColumn = v;
            return this;
        }

        public Builder outputColumn(String v) {
            outputColumn = v;
            return this;
        }

        public Builder datasets(java.util.List<DatasetSpec> v) {
            datasets = v == null ? null : java.util.List.copyOf(v);
            return this;
        }

        public Builder cacheDir(Path v) {
            cacheDir = v;
            return this;
        }

        public DataSection build() {
            return new DataSection(trainFile, validationFile, testFile, format, textColumn, promptColumn, responseColumn, messagesColumn, systemPrompt, validationSplit, testSplit, maxSeqLength, packing, trainOnInputs, onBadRow, onLongRow, normalizeWhitespace, dropDuplicates,
                    conversationsColumn, sharegptRoleKey, sharegptContentKey, instructionColumn, inputColumn, outputColumn,
                    datasets, cacheDir);
        }
    }

    @Override
    public void validate(Problems p) {
        if (trainFile == null && datasets == null) {
            p.add("train_file", "required key is missing (or list the files of a mixture under data.datasets)");
        } else if (trainFile != null && datasets != null && p.ok("train_file", "datasets")) {
            p.add("datasets", "give either train_file or datasets, not both (a single file is a mixture of one)");
        } else if (datasets != null && datasets.isEmpty()) {
            p.add("datasets", "an empty list; expected at least one {path, format, weight}");
        }
        file(p, "train_file", trainFile);
        file(p, "validation_file", validationFile);
        file(p, "test_file", testFile);

        p.check(validationSplit >= 0 && validationSplit < 1, "validation_split",
                "must be in [0, 1) (a fraction of train_file), got " + validationSplit);
        p.check(testSplit >= 0 && testSplit < 1, "test_split",
                "must be in [0, 1) (a fraction of train_file), got " + testSplit);
        double v = effectiveValidationSplit(), t = effectiveTestSplit();
        if (p.ok("validation_split", "test_split") && v + t >= 1) {
            p.add(validationFile == null ? "validation_split" : "test_split",
                    "validation_split (" + validationSplit + ") + test_split (" + testSplit
                            + ") must be < 1, or nothing is left to train on");
        }
        p.check(maxSeqLength >= MIN_SEQ_LENGTH, "max_seq_length",
                "must be at least " + MIN_SEQ_LENGTH + " tokens, got " + maxSeqLength);

        if (format != null && p.ok("format")) {
            switch (format) {
                case TEXT -> column(p, "text_column", textColumn);
                case INSTRUCTION -> {
                    column(p, "prompt_column", promptColumn);
                    column(p, "response_column", responseColumn);
                    if (promptColumn != null && promptColumn.equals(responseColumn)) {
                        p.check(false, "response_column", "format 'instruction' needs two different columns; prompt_column and "
                                + "response_column are both '" + promptColumn + "'", "prompt_column");
                    }
                }
                case CHAT -> column(p, "messages_column", messagesColumn);
                case SHAREGPT -> {
                    column(p, "conversations_column", conversationsColumn);
                    column(p, "sharegpt_role_key", sharegptRoleKey);
                    column(p, "sharegpt_content_key", sharegptContentKey);
                }
                case ALPACA -> {
                    column(p, "instruction_column", instructionColumn);
                    column(p, "input_column", inputColumn);
                    column(p, "output_column", outputColumn);
                }
                case PREFERENCE, KTO -> column(p, "prompt_column", promptColumn);   // the other columns: preference.*_column
            }
        }
    }

    private void column(Problems p, String key, String name) {
        if (name == null || !p.ok(key)) return;
        p.check(!name.isBlank(), key, "format '" + format.name().toLowerCase(java.util.Locale.ROOT)
                + "' reads this column; expected a column name, got an empty string");
    }

    static void file(Problems p, String key, Path file) {
        if (file == null || !p.ok(key)) return;
        if (!Files.exists(file)) p.add(key, "data file " + p.describePath(key, file) + " does not exist");
        else if (Files.isDirectory(file) && !isArrowDataset(file)) {
            p.add(key, p.describePath(key, file) + " is a directory; expected a data file or a datasets.save_to_disk"
                    + " directory (state.json or *.arrow files)");
        }
        else if (!Files.isReadable(file)) p.add(key, "data file " + p.describePath(key, file) + " is not readable");
    }

    /** A datasets.save_to_disk directory: state.json, or at least one *.arrow file. */
    private static boolean isArrowDataset(Path dir) {
        if (Files.isRegularFile(dir.resolve("state.json"))) return true;
        try (var s = Files.list(dir)) {
            return s.anyMatch(f -> f.getFileName().toString().endsWith(".arrow"));
        } catch (java.io.IOException e) {
            return false;
        }
    }
}
