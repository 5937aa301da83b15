package dev.jtune.sweep;

import dev.jtune.util.UserError;
import org.junit.jupiter.api.Test;

import java.util.List;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The SPEC forms: parsing, what each draws, the grid, and every malformed spec named in its message. */
class ParamSpecTest {
    @Test
    void formsParseAndDrawInsideTheirRange() {
        ParamSpec choice = ParamSpec.parse("lora.target_modules=[[q_proj, v_proj], all-linear]");
        assertEquals(List.of("[q_proj, v_proj]", "all-linear"), choice.choices());
        Random rng = new Random(1);
        ParamSpec log = ParamSpec.parse("training.learning_rate=loguniform(1e-5, 1e-2)");
        ParamSpec uni = ParamSpec.parse("lora.dropout=uniform(0,0.2)");
        ParamSpec ints = ParamSpec.parse("lora.r=int(4,6)");
        int[] perDecade = new int[3];
        int[] perInt = new int[3];
        for (int i = 0; i < 3000; i++) {
            double v = Double.parseDouble(log.sample(rng));
            assertTrue(v >= 1e-5 && v <= 1e-2, "" + v);
            perDecade[(int) Math.min(2, Math.floor(Math.log10(v) + 5))]++;
            double d = Double.parseDouble(uni.sample(rng));
            assertTrue(d >= 0 && d <= 0.2);
            perInt[Integer.parseInt(ints.sample(rng)) - 4]++;
        }
        for (int c : perDecade) assertTrue(Math.abs(c - 1000) < 120, "log-uniform: each decade about a third: " + java.util.Arrays.toString(perDecade));
        for (int c : perInt) assertTrue(Math.abs(c - 1000) < 120, "both ends included: " + java.util.Arrays.toString(perInt));
        assertEquals(List.of("4", "5", "6"), ints.gridValues());
        assertEquals("1.235E-4", ParamSpec.format(1.23456e-4));
    }

    @Test
    void malformedSpecsAreNamed() {
        for (String[] bad : new String[][] {{"training.learning_rate", "KEY=SPEC"}, {"lora.r=[4,8", "']'"}, {"lora.r=[4,,8]", "empty"},
                {"lora.r=int(1.5,4)", "whole numbers"}, {"lora.r=int(8,4)", "lo 8 > hi 4"}, {"x.y=loguniform(0,1)", "lo > 0"},
                {"x.y=uniform(a,1)", "'a' is not a finite number"}, {"x.y=gauss(0,1)", "unknown SPEC"}}) {
            UserError e = assertThrows(UserError.class, () -> ParamSpec.parse(bad[0]));
            assertTrue(e.getMessage().startsWith("--param " + bad[0] + ": ") && e.getMessage().contains(bad[1]), e.getMessage());
        }
        UserError e = assertThrows(UserError.class, () -> ParamSpec.parse("training.learning_rate=uniform(0,1)").gridValues());
        assertTrue(e.getMessage().contains("--method random"), e.getMessage());
    }
}
