package dev.jtune.sweep;

import org.junit.jupiter.api.Test;

import java.util.LinkedHashMap;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** ASHA's rungs and its promotion rule (Optuna's SuccessiveHalvingPruner), on values worked out by hand. */
class AshaPrunerTest {
    @Test
    void rungsAreTheFirstEvaluationTimesPowersOfEta() {
        AshaPruner p = new AshaPruner(3, true, "eval_loss");
        assertEquals(0, p.rungOf(10, 10));
        assertEquals(1, p.rungOf(30, 10));
        assertEquals(2, p.rungOf(90, 10));
        assertEquals(-1, p.rungOf(20, 10));
        assertEquals(-1, p.rungOf(60, 10));
        assertEquals(-1, p.rungOf(15, 10));
    }

    static Map<Long, Double> curve(double... atSteps2And4) {
        Map<Long, Double> m = new LinkedHashMap<>();
        for (int i = 0; i < atSteps2And4.length; i++) m.put(2L << i, atSteps2And4[i]);
        return m;
    }

    @Test
    void aTrialGoesOnOnlyAmongTheBestOneOverEtaOfItsRung() {
        AshaPruner p = new AshaPruner(2, true, "eval_loss");
        assertNull(p.decide(2, 2, 5.0), "the first trial has no rival");
        p.record(curve(5.0, 4.0));
        assertNull(p.decide(2, 2, 4.9), "best of 2: goes on");
        String why = p.decide(2, 2, 5.1);
        assertTrue(why != null && why.startsWith("pruned by ASHA at step 2 (rung 0: eval_loss 5.1000"), why);
        p.record(curve(4.9, 3.0));
        p.record(curve(6.0));
        // rung 0 now holds 5.0, 4.9, 6.0; a fourth value: keep the best 4 / 2 = 2 (cut at the second best)
        assertNull(p.decide(2, 2, 4.95));
        assertTrue(p.decide(2, 2, 5.05) != null);
        // rung 1 (step 4) holds 4.0, 3.0: with a third value keep max(1, 3 / 2) = 1, the best
        assertNull(p.decide(4, 2, 2.9));
        assertTrue(p.decide(4, 2, 3.1) != null);
        assertNull(p.decide(6, 2, 100.0), "step 6 is no rung");
        assertTrue(p.decide(2, 2, Double.NaN) != null, "a non-finite metric is pruned");
    }

    @Test
    void maximizeKeepsTheHighest() {
        AshaPruner p = new AshaPruner(2, false, "eval_perplexity");
        p.record(curve(10.0));
        assertNull(p.decide(2, 2, 11.0));
        assertTrue(p.decide(2, 2, 9.0) != null);
    }
}
