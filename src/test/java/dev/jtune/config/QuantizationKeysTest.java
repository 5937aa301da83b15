package dev.jtune.config;

import dev.jtune.cli.CliTest;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.util.List;

import static dev.jtune.config.ConfigFixture.assertProblem;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** {@code model.quantization:} with BitsAndBytesConfig's names: binding, --set, validation, the QLoRA cross-check, pre-quantized dirs. */
class QuantizationKeysTest {
    @TempDir
    Path tmp;
    ConfigFixture fx;

    @BeforeEach
    void setUp() {
        fx = new ConfigFixture(tmp);
    }

    static final String LORA = "lora:\n  enabled: true\n";

    @Test
    void defaultsAreUnquantizedAsBitsAndBytesConfig() {
        Experiment e = fx.load(fx.minimal("", "", ""));
        assertEquals(QuantizationSection.NONE, e.model().quantization());
        assertFalse(e.model().fourBit());
        assertEquals("nf4", e.model().quantization().bnb_4bitQuantType());
        assertEquals("float32", e.model().quantization().bnb_4bitComputeDtype());
    }

    @Test
    void keysBindAndRoundTripThroughTheResolvedFile() {
        Experiment e = fx.load(fx.minimal("quantization:\n  load_in_4bit: true\n  bnb_4bit_quant_type: fp4\n"
                + "  bnb_4bit_use_double_quant: true\n  bnb_4bit_compute_dtype: bfloat16\n  llm_int8_skip_modules: [lm_head, down_proj]\n",
                "", "") + LORA);
        QuantizationSection q = e.model().quantization();
        assertEquals(new QuantizationSection(true, "fp4", true, "bfloat16", List.of("lm_head", "down_proj")), q);
        assertTrue(e.toYaml().contains("quantization: {load_in_4bit: true, bnb_4bit_quant_type: fp4, bnb_4bit_use_double_quant: true, "
                + "bnb_4bit_compute_dtype: bfloat16, llm_int8_skip_modules: [lm_head, down_proj]}"), e.toYaml());
        Path resolved = tmp.resolve("resolved.yaml");
        e.writeResolved(resolved);
        assertEquals(e, Experiment.load(resolved, List.of()));
        assertEquals(List.of("lm_head", "down_proj"), q.toConfig().skipModules());
    }

    @Test
    void setReachesANestedKey() {
        Experiment e = fx.load(fx.minimal("", "", "") + LORA, "model.quantization.load_in_4bit=true",
                "model.quantization.bnb_4bit_use_double_quant=true");
        assertTrue(e.model().fourBit());
        assertTrue(e.model().quantization().bnb_4bitUseDoubleQuant());
        assertEquals("nf4", e.model().quantization().bnb_4bitQuantType());
        // the whole mapping at once works too
        Experiment f = fx.load(fx.minimal("", "", "") + LORA, "model.quantization={load_in_4bit: true, bnb_4bit_quant_type: fp4}");
        assertEquals("fp4", f.model().quantization().bnb_4bitQuantType());
        String m = fx.fails(fx.minimal("", "", "") + LORA, "model.quantization.load_in4bit=true");
        assertTrue(m.contains("--set model.quantization.load_in4bit=true") && m.contains("did you mean 'load_in_4bit'?"), m);
        m = fx.fails(fx.minimal("", "", "") + LORA, "model.quantization.bnb_4bit_quant_type=int4");
        assertTrue(m.contains("(--set model.quantization.bnb_4bit_quant_type=int4): model.quantization.bnb_4bit_quant_type: unknown value 'int4'"), m);
    }

    @Test
    void mistakesNameTheLineAndTheDottedKey() {
        String m = fx.fails(fx.minimal("quantization:\n  load_in_4bit: yes please\n  bnb_4bit_quant_type: NF4\n"
                + "  bnb_4bit_compute_dtype: bf16\n  load_in_8bit: true\n", "", "") + LORA);
        assertEquals(4, ConfigFixture.count(m), m);
        assertProblem(m, "model.quantization.load_in_4bit", "exp.yaml:5", "expected true or false");
        assertProblem(m, "model.quantization.bnb_4bit_quant_type", "exp.yaml:6", "expected nf4 or fp4", "did you mean 'nf4'?");
        assertProblem(m, "model.quantization.bnb_4bit_compute_dtype", "exp.yaml:7", "did you mean 'bfloat16'?");
        assertProblem(m, "model.quantization.load_in_8bit", "exp.yaml:8", "unknown key", "4-bit");
        m = fx.fails(fx.minimal("quantization: true\n", "", ""));
        assertProblem(m, "model.quantization", "expected a mapping of keys (load_in_4bit, bnb_4bit_quant_type");
        m = fx.fails(fx.minimal("", "", "") + "quantization_config:\n  load_in_4bit: true\n");
        assertTrue(m.contains("use 'model.quantization'"), m);
    }

    /** Full fine-tuning of a 4-bit base is refused with the reason, naming the key; `jtune train` exits 2. */
    @Test
    void fourBitBaseRequiresLora() {
        String yaml = fx.minimal("quantization:\n  load_in_4bit: true\n", "", "");
        String m = fx.fails(yaml);
        assertProblem(m, "model.quantization.load_in_4bit", "exp.yaml:5", "cannot be fully fine-tuned", "lora.enabled: true");
        CliTest.Run r = CliTest.run("train", fx.file(yaml).toString());
        assertEquals(2, r.code(), r.err());
        assertTrue(r.err().contains("model.quantization.load_in_4bit") && r.err().contains("QLoRA"), r.err());
        assertFalse(r.err().contains("\tat "), r.err());
        // with LoRA it is QLoRA: valid
        assertTrue(fx.load(yaml + LORA).model().fourBit());
    }

    /** A pre-quantized model dir implies 4 bits with its own settings; full fine-tuning of it is refused under model.path. */
    @Test
    void preQuantizedDirectoryImpliesFourBits() {
        Path python = Path.of("src/test/resources/quant/llama-tiny-nf4-python").toAbsolutePath();
        String yaml = "model:\n  path: " + python + "\n  tokenizer: " + ConfigFixture.GPT2_TOKENIZER + "\ndata:\n  train_file: "
                + fx.train + "\ntraining:\n  output_dir: " + fx.out + "\n";
        Experiment e = fx.load(yaml + LORA);
        assertEquals(new QuantizationSection(true, "nf4", true, "float32", null), e.model().quantization());
        String m = fx.fails(yaml);
        assertProblem(m, "model.path", "is a 4-bit checkpoint", "lora.enabled: true");
    }
}
