package dev.jtune.serve;

import dev.jtune.cli.CliTest;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** `jtune serve` refuses bad options with exit 2 and a message naming the option, before it loads anything. */
class ServeCommandTest {
    @TempDir
    Path tmp;

    static void assertUserError(CliTest.Run r, String... mustContain) {
        assertEquals(2, r.code(), r.err());
        for (String s : mustContain) assertTrue(r.err().contains(s), r.err());
        assertFalse(r.err().contains("\tat ") || r.err().contains("Exception"), r.err());
    }

    @Test
    void badOptionsExitTwo() {
        assertUserError(CliTest.run("serve", "--model", tmp.resolve("none").toString()), "--model", "config.json");
        Path model = ServeFixtures.model("llama", tmp.resolve("m"), 1);
        String m = model.toString();
        assertUserError(CliTest.run("serve", "--model", m, "--max-batch", "0"), "--max-batch");
        assertUserError(CliTest.run("serve", "--model", m, "--adapter", "noequals"), "--adapter", "NAME=DIR");
        assertUserError(CliTest.run("serve", "--model", m, "--adapter", "a=" + tmp, "--adapter", "a=" + tmp), "given twice");
        assertUserError(CliTest.run("serve", "--model", m, "--log-texts"), "--log-texts", "--request-log");
        assertUserError(CliTest.run("serve", "--model", m, "--max-body", "lots"), "--max-body");
        assertUserError(CliTest.run("serve", "--model", m, "--kernels", "on"), "--kernels");
        assertUserError(CliTest.run("serve", "--model", m, "--adapter", "x=" + tmp, "--port", "0"), "adapter_config.json");
    }
}
