package dev.jtune.config;

import dev.jtune.util.UserError;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

import static dev.jtune.config.ConfigFixture.GPT2_MODEL;
import static dev.jtune.config.ConfigFixture.GPT2_TOKENIZER;
import static dev.jtune.config.ConfigFixture.LLAMA;
import static dev.jtune.config.ConfigFixture.assertProblem;
import static dev.jtune.config.ConfigFixture.count;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Every mistake is a UserError (exit 2) naming the file and the dotted key, and all of them come at once. */
class ExperimentValidationTest {
    @TempDir
    Path tmp;
    ConfigFixture fx;

    @BeforeEach
    void setUp() {
        fx = new ConfigFixture(tmp);
    }

    // ---- unknown keys and sections -------------------------------------------------------------------------

    @Test
    void unknownKeySuggestsTheClosestAndNamesTheLine() {
        String m = fx.fails(fx.with("training", "learning_rat: 1e-4"));
        String line = assertProblem(m, "training.learning_rat", "unknown key", "did you mean 'learning_rate'?");
        assertTrue(line.startsWith(tmp.resolve("exp.yaml") + ":8: "), line);
    }

    @Test
    void unknownKeyFarFromAnyNameListsTheValidOnes() {
        assertProblem(fx.fails(fx.with("model", "flavour: vanilla")), "model.flavour", "unknown key",
                "valid keys: path, dtype, tokenizer, ");
    }

    @Test
    void keyInTheWrongSectionSaysWhereItBelongs() {
        assertProblem(fx.fails(fx.with("data", "learning_rate: 1e-4")), "data.learning_rate",
                "'learning_rate' belongs in the training section");
    }

    @Test
    void huggingFaceSpellingsGetAHint() {
        assertProblem(fx.fails(fx.with("training", "bf16: true")), "training.bf16", "use 'training.precision: bf16'");
        assertProblem(fx.fails(fx.with("training", "eval_strategy: steps")), "training.eval_strategy", "eval_steps");
    }

    @Test
    void unknownTopLevelSectionIsRefused() {
        assertProblem(fx.fails(fx.minimal("", "", "") + "trainig:\n  seed: 1\n"), "trainig",
                "unknown section", "did you mean 'training'?");
        // sections other issues will add are unknown until their record is registered
        assertProblem(fx.fails(fx.minimal("", "", "") + "kernels:\n  mode: auto\n"), "kernels",
                "unknown section; expected one of: model, data, training, lora, sweep");
        assertProblem(fx.fails(fx.minimal("", "", "") + "seed: 1\n"), "seed", "key of the training section");
    }

    @Test
    void sectionThatIsNotAMappingIsRefused() {
        String yaml = "model:\n  path: " + LLAMA + "\ndata: [a, b]\ntraining:\n  output_dir: " + fx.out + "\n";
        assertProblem(fx.fails(yaml), "data", "expected a mapping of keys", "got a list");
    }

    // ---- types ---------------------------------------------------------------------------------------------

    @ParameterizedTest
    @CsvSource(delimiter = '|', value = {
            "training | learning_rate: fast                 | expected a number, got a string ('fast')",
            "training | learning_rate: [1e-4]               | expected a number, got a list",
            "training | per_device_train_batch_size: 8.5    | expected an integer, got a number (8.5)",
            "training | per_device_train_batch_size: '8'    | expected an integer, got a string ('8')",
            "training | max_steps: 99999999999              | expected an integer between",
            "training | save_total_limit: many              | expected an integer, got a string ('many') (or null)",
            "training | load_best_model_at_end: maybe       | expected true or false, got a string ('maybe')",
            "training | logging_dir: {a: 1}                 | expected a path, got a mapping (quote the value if it contains ': ') (or null)",
            "training | learning_rate: null                 | expected a value, got null",
            "training | learning_rate: 1e400                | expected a finite number",
            "training | learning_rate: .inf                 | '.inf' is not a finite number",
            "data     | packing: 1                          | expected true or false, got an integer (1)",
            "data     | text_column: 3                      | expected a string, got an integer (3)",
            "data     | text_column: {a: 1}                 | expected a string, got a mapping",
            "model    | dtype: [float32]                    | expected a string, got a list (or null)",
    })
    void wrongTypesNameTheExpectedType(String section, String line, String expected) {
        String key = line.substring(0, line.indexOf(':'));
        String m = fx.fails(fx.with(section, line));
        assertProblem(m, section + "." + key, expected);
        assertEquals(1, count(m), m);   // a value of the wrong type is not also reported out of range
    }

    // ---- ranges --------------------------------------------------------------------------------------------

    @ParameterizedTest
    @CsvSource(delimiter = '|', value = {
            "training | learning_rate: 0                    | learning_rate               | must be > 0, got 0.0",
            "training | learning_rate: -1e-4                | learning_rate               | must be > 0",
            "training | per_device_train_batch_size: 0      | per_device_train_batch_size | must be at least 1, got 0",
            "training | per_device_eval_batch_size: -2      | per_device_eval_batch_size  | must be at least 1",
            "training | gradient_accumulation_steps: 0      | gradient_accumulation_steps | must be at least 1",
            "training | warmup_ratio: 1.0                   | warmup_ratio                | must be in [0, 1), got 1.0",
            "training | warmup_ratio: -0.1                  | warmup_ratio                | must be in [0, 1)",
            "training | warmup_steps: -1                    | warmup_steps                | must be at least 0",
            "training | weight_decay: -0.01                 | weight_decay                | must not be negative",
            "training | adam_beta1: 1.0                     | adam_beta1                  | must be in [0, 1)",
            "training | adam_beta2: -0.5                    | adam_beta2                  | must be in [0, 1)",
            "training | adam_epsilon: 0                     | adam_epsilon                | must be > 0",
            "training | max_grad_norm: -1                   | max_grad_norm               | must not be negative",
            "training | num_train_epochs: 0                 | num_train_epochs            | must be > 0 when max_steps is -1",
            "training | max_steps: 0                        | max_steps                   | must be -1 (train for num_train_epochs) or a positive",
            "training | logging_steps: 0                    | logging_steps               | must be at least 1",
            "training | eval_steps: -5                      | eval_steps                  | must not be negative",
            "training | save_steps: -5                      | save_steps                  | must not be negative",
            "training | save_total_limit: 0                 | save_total_limit            | must be at least 1, or null",
            "training | early_stopping_patience: 0          | early_stopping_patience     | must be at least 1, or null",
            "training | early_stopping_threshold: -1        | early_stopping_threshold    | must not be negative",
            "training | dataloader_num_workers: -1          | dataloader_num_workers      | must be at least 0",
            "training | device: gpu                         | device                      | unknown device 'gpu'; expected one of: auto, cpu, cuda, cuda:N",
            "data     | validation_split: 1.0               | validation_split            | must be in [0, 1)",
            "data     | validation_split: -0.1              | validation_split            | must be in [0, 1)",
            "data     | test_split: 1                       | test_split                  | must be in [0, 1)",
            "data     | max_seq_length: 4                   | max_seq_length              | must be at least 8 tokens, got 4",
            "model    | dtype: bf16                         | dtype                       | expected one of: float32, bfloat16, float16",
    })
    void outOfRangeValuesAreRefused(String section, String line, String key, String expected) {
        String m = fx.fails(fx.with(section, line));
        assertProblem(m, section + "." + key, expected);
        assertEquals(1, count(m), m);
    }

    @Test
    void dtypeAliasGetsASuggestion() {
        assertProblem(fx.fails(fx.with("model", "dtype: bf16")), "model.dtype", "did you mean 'bfloat16'?");
    }

    @Test
    void splitsMustLeaveSomethingToTrainOn() {
        assertProblem(fx.fails(fx.with("data", "validation_split: 0.6\ntest_split: 0.4")), "data.validation_split",
                "validation_split (0.6) + test_split (0.4) must be < 1");
        // with a validation file the validation split does not apply
        Path val = ConfigFixture.write(tmp.resolve("val.jsonl"), "{}\n");
        fx.load(fx.with("data", "validation_file: " + val + "\nvalidation_split: 0.6\ntest_split: 0.4"));
    }

    @Test
    void epochsMayBeZeroWhenMaxStepsIsSet() {
        assertEquals(10, fx.load(fx.with("training", "num_train_epochs: 0\nmax_steps: 10")).training().maxSteps());
    }

    // ---- enums ---------------------------------------------------------------------------------------------

    @ParameterizedTest
    @CsvSource(delimiter = '|', value = {
            "training | lr_scheduler_type: cosin     | unknown value 'cosin'; expected one of: linear, cosine, cosine_with_restarts, polynomial, constant, constant_with_warmup, inverse_sqrt, cosine_with_min_lr; did you mean 'cosine'?",
            "training | lr_scheduler_type: warmup_stable_decay | expected one of: linear, cosine, cosine_with_restarts, polynomial, constant, constant_with_warmup, inverse_sqrt, cosine_with_min_lr",
            "training | precision: tf32              | unknown value 'tf32'; expected one of: auto, fp32, bf16, fp16",
            "training | precision: true              | expected one of: auto, fp32, bf16, fp16, got true",
            "training | kernels: on                  | expected one of: auto, off, got true (YAML reads unquoted on/off/yes/no/true/false as a boolean)",
            "training | kernels: fast                | unknown value 'fast'; expected one of: auto, off",
            "data     | format: xml                  | unknown value 'xml'; expected one of: text, instruction, chat",
            "data     | on_bad_row: ignore           | expected one of: skip, fail",
            "data     | on_long_row: split           | expected one of: truncate, drop",
    })
    void unknownEnumValuesListTheValidOnes(String section, String line, String expected) {
        String key = line.substring(0, line.indexOf(':'));
        assertProblem(fx.fails(fx.with(section, line)), section + "." + key, expected);
    }

    // ---- required keys, files ------------------------------------------------------------------------------

    @Test
    void missingRequiredKeysAreAllReported() {
        String m = fx.fails("model:\n  dtype: float32\ndata: {}\ntraining:\n  seed: 1\n");
        assertProblem(m, "model.path", "required key is missing");
        assertProblem(m, "data.train_file", "required key is missing");
        assertProblem(m, "training.output_dir", "required key is missing");
        assertEquals(3, count(m), m);
    }

    @Test
    void missingSectionsReportTheirRequiredKeys() {
        String m = fx.fails("model:\n  path: " + LLAMA + "\n  tokenizer: " + GPT2_TOKENIZER + "\n");
        assertProblem(m, "data.train_file", "required key is missing");
        assertProblem(m, "training.output_dir", "required key is missing");
    }

    @Test
    void requiredKeyWithoutValueIsRefused() {
        String yaml = fx.minimal("", "", "").replace("output_dir: " + fx.out, "output_dir:");
        assertProblem(fx.fails(yaml), "training.output_dir", "required key has no value");
    }

    @Test
    void modelPathMustBeAModelDirectory() {
        assertProblem(fx.fails(fx.minimal("", "", ""), "model.path=" + tmp.resolve("nope")), "model.path",
                "model directory '" + tmp.resolve("nope") + "' does not exist");
        assertProblem(fx.fails(fx.minimal("", "", ""), "model.path=" + fx.train), "model.path",
                "is a file; expected a Hugging Face model directory");
        assertProblem(fx.fails(fx.minimal("", "", ""), "model.path=" + tmp), "model.path",
                "no config.json in '" + tmp + "'");
    }

    @Test
    void relativeMissingPathIsShownWithWhereItResolved() {
        String line = assertProblem(fx.fails(fx.minimal("", "", ""), "model.path=models/nope"), "model.path",
                "'models/nope' (relative to the working directory: " + Path.of("models/nope").toAbsolutePath() + ")");
        assertTrue(line.contains("(--set model.path=models/nope)"), line);
    }

    @Test
    void modelWithUnsupportedConfigIsRefused() throws Exception {
        Path bert = Files.createDirectories(tmp.resolve("bert"));
        Files.writeString(bert.resolve("config.json"), "{\"model_type\": \"bert\"}");
        assertProblem(fx.fails(fx.minimal("", "", ""), "model.path=" + bert), "model.path", "'bert' is not supported");
    }

    @Test
    void tokenizerMustHaveTokenizerJson() {
        // llama-tiny has no tokenizer.json, and model.tokenizer defaults to model.path
        String yaml = "model:\n  path: " + LLAMA + "\ndata:\n  train_file: " + fx.train + "\ntraining:\n  output_dir: " + fx.out + "\n";
        assertProblem(fx.fails(yaml), "model.tokenizer", "no tokenizer.json in '" + LLAMA + "'",
                "model.tokenizer defaults to model.path");
        assertProblem(fx.fails(fx.minimal("", "", ""), "model.tokenizer=" + tmp.resolve("tok")), "model.tokenizer",
                "tokenizer directory does not exist: '" + tmp.resolve("tok") + "'");
        // a tokenizer.json file is accepted, as HfTokenizer.load accepts it
        fx.load(fx.minimal("", "", ""), "model.tokenizer=" + GPT2_TOKENIZER.resolve("tokenizer.json"));
    }

    @Test
    void dataFilesMustExist() {
        String m = fx.fails(fx.minimal("", "", ""), "data.train_file=" + tmp.resolve("missing.jsonl"),
                "data.validation_file=" + tmp, "data.test_file=" + tmp.resolve("t.csv"));
        assertProblem(m, "data.train_file", "data file '" + tmp.resolve("missing.jsonl") + "' does not exist");
        assertProblem(m, "data.validation_file", "is a directory; expected a data file");
        assertProblem(m, "data.test_file", "does not exist");
        assertEquals(3, count(m), m);
    }

    @Test
    void outputDirMustNotBeAFile() {
        assertProblem(fx.fails(fx.minimal("", "", ""), "training.output_dir=" + fx.train), "training.output_dir",
                "exists and is not a directory");
    }

    // ---- combinations --------------------------------------------------------------------------------------

    @Test
    void formatNeedsItsColumns() {
        assertProblem(fx.fails(fx.with("data", "format: instruction\nprompt_column: ''")), "data.prompt_column",
                "format 'instruction' reads this column; expected a column name, got an empty string");
        assertProblem(fx.fails(fx.with("data", "format: instruction\nresponse_column: ' '")), "data.response_column",
                "format 'instruction'");
        assertProblem(fx.fails(fx.with("data", "format: chat\nmessages_column: ''")), "data.messages_column",
                "format 'chat'");
        assertProblem(fx.fails(fx.with("data", "text_column: ''")), "data.text_column", "format 'text'");
        assertProblem(fx.fails(fx.with("data", "format: instruction\nprompt_column: q\nresponse_column: q")),
                "data.response_column", "two different columns");
        // columns the format does not read may be anything
        fx.load(fx.with("data", "format: chat\nprompt_column: ''"));
    }

    @Test
    void earlyStoppingNeedsValidationDataAndBestModel() {
        assertProblem(fx.fails(fx.minimal("", "validation_split: 0", "early_stopping_patience: 3")),
                "training.early_stopping_patience", "needs validation data");
        assertProblem(fx.fails(fx.with("training", "early_stopping_patience: 3\nload_best_model_at_end: false")),
                "training.early_stopping_patience", "needs training.load_best_model_at_end: true");
    }

    @Test
    void bestModelNeedsCheckpointsWhenEvaluating() {
        assertProblem(fx.fails(fx.with("training", "eval_steps: 30\nsave_steps: 50")), "training.save_steps",
                "save_steps (50) must be a multiple of eval_steps (30)");
        assertProblem(fx.fails(fx.with("training", "eval_steps: 30")), "training.save_steps", "multiple of eval_steps");
        fx.load(fx.with("training", "eval_steps: 25\nsave_steps: 50"));
        fx.load(fx.with("training", "eval_steps: 30\nload_best_model_at_end: false"));
        fx.load(fx.minimal("", "validation_split: 0", "eval_steps: 30"));   // nothing to evaluate: not applicable
    }

    @Test
    void gpt2SequencesCannotOutgrowItsPositions() {
        String yaml = fx.minimal("", "", "").replace(LLAMA.toString(), GPT2_MODEL.toString());
        assertProblem(fx.fails(yaml), "data.max_seq_length", "512 is longer than the model's 64 learned positions");
        assertEquals(64, fx.load(yaml, "data.max_seq_length=64").data().maxSeqLength());
    }

    // ---- the file itself -----------------------------------------------------------------------------------

    @Test
    void yamlSyntaxErrorNamesLineAndColumn() {
        String m = fx.fails("model:\n  path: x\n data: [\n");
        assertTrue(m.startsWith(tmp.resolve("exp.yaml") + ":3:"), m);
        assertTrue(m.contains("YAML syntax error"), m);
        String tabs = fx.fails("model:\n\tpath: x\n");
        assertTrue(tabs.startsWith(tmp.resolve("exp.yaml") + ":2:"), tabs);
    }

    @Test
    void emptyFileIsRefused() {
        assertTrue(fx.fails("").contains("exp.yaml: the file is empty; expected a mapping with the sections model, data, training"));
        assertTrue(fx.fails("# only a comment\n\n").contains("the file is empty"));
    }

    @Test
    void topLevelMustBeAMapping() {
        assertTrue(fx.fails("- model\n- data\n").contains("exp.yaml:1: the top level must be a mapping"), "list");
        assertTrue(fx.fails("just words\n").contains("got a string ('just words')"), "scalar");
    }

    @Test
    void duplicateKeysAreRefused() {
        String yaml = fx.minimal("", "", "seed: 1\nseed: 2\nlearning_rate: 0");
        String m = fx.fails(yaml);
        assertProblem(m, "training.seed", "given twice (lines 8 and 9)");
        assertProblem(m, "training.learning_rate", "must be > 0");   // not a syntax error: the rest is still checked
    }

    @Test
    void secondDocumentIsRefused() {
        assertTrue(fx.fails(fx.minimal("", "", "") + "---\nmodel: {}\n").contains("a second YAML document"));
    }

    @Test
    void missingOrDirectoryExperimentFile() {
        UserError e = assertThrows(UserError.class, () -> Experiment.load(tmp.resolve("none.yaml"), List.of()));
        assertTrue(e.getMessage().contains("none.yaml: experiment file not found"), e.getMessage());
        e = assertThrows(UserError.class, () -> Experiment.load(tmp, List.of()));
        assertTrue(e.getMessage().contains("is a directory"), e.getMessage());
    }

    // ---- --set ---------------------------------------------------------------------------------------------

    @Test
    void malformedOverridesNameTheOverride() {
        String ok = fx.minimal("", "", "");
        String m;
        assertTrue(fx.fails(ok, "training.learning_rate").contains("exp.yaml (--set training.learning_rate): expected section.key=value"));
        m = fx.fails(ok, "learning_rate=1");
        assertTrue(m.contains("(--set learning_rate=1): expected section.key=value, e.g. training.learning_rate=1e-4; "
                + "'learning_rate' is not section.key; did you mean 'training.learning_rate'?"), m);
        assertTrue(fx.fails(ok, "training.learnin_rate=1e-4").contains(
                "(--set training.learnin_rate=1e-4): unknown key 'training.learnin_rate'; did you mean 'learning_rate'?"));
        assertTrue(fx.fails(ok, "trainer.seed=1").contains("(--set trainer.seed=1): unknown section 'trainer'"));
        m = fx.fails(ok, "data.system_prompt=[unclosed");
        assertTrue(m.contains("(--set data.system_prompt=[unclosed): YAML syntax error"), m);
    }

    @Test
    void badOverrideValueNamesTheOverrideAndKey() {
        String m = fx.fails(fx.minimal("", "", ""), "training.learning_rate=fast");
        String line = assertProblem(m, "training.learning_rate", "expected a number, got a string ('fast')");
        assertTrue(line.contains("exp.yaml (--set training.learning_rate=fast): "), line);
        assertProblem(fx.fails(fx.minimal("", "", ""), "data.system_prompt=Role: pirate"), "data.system_prompt",
                "got a mapping (quote the value if it contains ': ')");
    }

    // ---- all at once ---------------------------------------------------------------------------------------

    @Test
    void everyProblemIsReportedAtOnceSortedByLine() {
        String yaml = "model:\n  path: " + tmp.resolve("nope") + "\n  dtype: fp8\n"
                + "data:\n  train_file: " + fx.train + "\n  validation_split: 2\n  formatt: text\n"
                + "training:\n  output_dir: " + fx.out + "\n  learning_rate: fast\n  warmup_ratio: 1.5\n"
                + "  lr_scheduler_type: cosin\n";
        String m = fx.fails(yaml, "training.seed=x", "oops");
        String[] lines = m.split("\n");
        assertEquals(tmp.resolve("exp.yaml") + ": 9 problems:", lines[0]);
        assertEquals(9, count(m), m);
        assertProblem(m, "model.path", "does not exist");
        assertProblem(m, "model.dtype", "unknown value 'fp8'");
        assertProblem(m, "data.validation_split", "must be in [0, 1)");
        assertProblem(m, "data.formatt", "did you mean 'format'?");
        assertProblem(m, "training.learning_rate", "expected a number");
        assertProblem(m, "training.warmup_ratio", "must be in [0, 1)");
        assertProblem(m, "training.lr_scheduler_type", "did you mean 'cosine'?");
        assertProblem(m, "training.seed", "--set training.seed=x");
        assertTrue(m.contains("(--set oops): expected section.key=value"), m);
        assertTrue(lines[1].startsWith(tmp.resolve("exp.yaml") + ":2: model.path"), lines[1]);
        assertTrue(lines[7].contains(":12: training.lr_scheduler_type"), lines[7]);
        for (int i = 1; i < lines.length; i++) assertTrue(lines[i].startsWith(tmp.resolve("exp.yaml").toString()), lines[i]);
        assertFalse(m.contains("\tat "), m);
    }

    @Test
    void loraKeysAreChecked() {
        String base = fx.minimal("", "", "");
        assertProblem(fx.fails(base + "lora:\n  enabled: true\n  r: 0\n"), "lora.r", "at least 1");
        assertProblem(fx.fails(base + "lora:\n  enabled: true\n  alpha: -2\n"), "lora.alpha", "> 0");
        assertProblem(fx.fails(base + "lora:\n  enabled: true\n  dropout: 1.0\n"), "lora.dropout", "[0, 1)");
        assertProblem(fx.fails(base + "lora:\n  enabled: true\n  target_modules: []\n"), "lora.target_modules", "empty");
        assertProblem(fx.fails(base + "lora:\n  enabled: true\n  adapter_path: " + fx.out + "\n"), "lora.adapter_path", "adapter_config.json");
        assertProblem(fx.fails(base + "lora:\n  rank: 8\n"), "lora.rank", "unknown key");
    }
}
