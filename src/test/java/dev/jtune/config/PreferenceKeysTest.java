package dev.jtune.config;

import dev.jtune.cli.Main;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.file.Path;

import static dev.jtune.config.ConfigFixture.assertProblem;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** training.method and the preference: section: TRL's defaults per method, and a key of another method refused. */
class PreferenceKeysTest {
    @TempDir
    Path tmp;

    private String file(ConfigFixture fx, String format, String method, String preference) {
        return fx.minimal("", "format: " + format, "method: " + method + "\nper_device_train_batch_size: 2")
                + (preference.isEmpty() ? "" : "preference:\n  " + preference.replace("\n", "\n  ") + "\n");
    }

    @Test
    void eachMethodGetsTrlDefaultsForItsOwnKeysOnly() {
        ConfigFixture fx = new ConfigFixture(tmp);
        PreferenceSection dpo = fx.load(file(fx, "preference", "dpo", "")).preference();
        assertEquals(0.1, dpo.beta());
        assertEquals(PreferenceSection.LossType.SIGMOID, dpo.lossType());
        assertEquals(0.0, dpo.labelSmoothing());
        assertEquals(false, dpo.referenceFree());
        assertEquals(512, dpo.maxPromptLength());
        assertNull(dpo.rpoAlpha());
        assertNull(dpo.simpoGamma());
        assertNull(dpo.desirableWeight());
        PreferenceSection simpo = fx.load(file(fx, "preference", "simpo", "beta: 2.5")).preference();
        assertEquals(2.5, simpo.beta());
        assertEquals(0.5, simpo.simpoGamma());
        assertEquals(1.0, simpo.cpoAlpha());
        assertNull(simpo.lossType());
        PreferenceSection kto = fx.load(file(fx, "kto", "kto", "undesirable_weight: 1.33")).preference();
        assertEquals(1.0, kto.desirableWeight());
        assertEquals(1.33, kto.undesirableWeight());
        PreferenceSection sft = fx.load(fx.minimal("", "", "")).preference();
        assertNull(sft.beta());
        // the resolved file reads back to the same experiment (the method's defaults written, the rest null)
        Experiment e = fx.load(file(fx, "preference", "dpo", "loss_type: ipo"));
        Path resolved = tmp.resolve("resolved.yaml");
        e.writeResolved(resolved);
        assertEquals(e, Experiment.load(resolved, java.util.List.of()));
    }

    @Test
    void aKeyOfAnotherMethodIsRefusedByName() {
        ConfigFixture fx = new ConfigFixture(tmp);
        String m = fx.fails(file(fx, "preference", "dpo", "simpo_gamma: 1.0"));
        assertProblem(m, "preference.simpo_gamma", "not a setting of training.method dpo", "dpo reads: beta, loss_type");
        m = fx.fails(file(fx, "preference", "orpo", "loss_type: ipo"));
        assertProblem(m, "preference.loss_type", "training.method orpo");
        m = fx.fails(fx.minimal("", "", "") + "preference:\n  beta: 0.2\n");
        assertProblem(m, "preference.beta", "supervised fine-tuning reads no preference key");
        m = fx.fails(file(fx, "kto", "dpo", ""));
        assertProblem(m, "data.format", "set data.format: preference");
        m = fx.fails(file(fx, "preference", "dpo", "") + "", "data.packing=true");
        assertProblem(m, "data.packing", "cannot be packed");
        m = fx.fails(file(fx, "kto", "kto", ""), "training.per_device_train_batch_size=1");
        assertProblem(m, "training.per_device_train_batch_size", "KL");
    }

    @Test
    void theCommandLineExitsWithCodeTwoNamingTheKey() {
        ConfigFixture fx = new ConfigFixture(tmp);
        Path f = fx.file(file(fx, "preference", "simpo", "desirable_weight: 2.0"));
        ByteArrayOutputStream err = new ByteArrayOutputStream();
        PrintStream was = System.err;
        int code;
        try {
            System.setErr(new PrintStream(err, true));
            code = Main.run(new String[] {"train", f.toString()});
        } finally {
            System.setErr(was);
        }
        assertEquals(2, code);
        assertTrue(err.toString().contains("preference.desirable_weight"), err.toString());
    }
}
