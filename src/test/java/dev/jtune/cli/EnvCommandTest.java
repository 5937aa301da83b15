package dev.jtune.cli;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import org.junit.jupiter.api.Test;

import java.nio.file.Files;
import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** `jtune env --json`: LibTorch 2.10 as loaded, and every native library with a path that exists. */
class EnvCommandTest {
    @Test
    void envNamesLibTorchAndEveryLoadedLibrary() throws Exception {
        CliTest.Run r = CliTest.run("env", "--json");
        assertEquals(0, r.code(), r.err());
        JsonNode env = new ObjectMapper().readTree(r.out());
        assertTrue(env.at("/libtorch/version").asText().startsWith("2.10"), env.toPrettyString());
        assertTrue(env.at("/libtorch/build").asText().startsWith("CPU"), "this machine runs the CPU build");
        assertTrue(env.at("/java/version").asText().startsWith(System.getProperty("java.specification.version")));
        assertFalse(env.at("/jtune/commit").asText().isEmpty());
        assertTrue(env.at("/cuda/usable").isBoolean());
        assertTrue(env.at("/javacpp_cache/free_bytes").asLong() > 0);
        JsonNode libs = env.get("native_libraries");
        String torchDir = env.at("/libtorch/directory").asText();
        boolean torchCpu = false;
        for (JsonNode l : libs) {
            Path p = Path.of(l.asText());
            assertTrue(Files.exists(p), "a listed library exists: " + p);
            if (p.getFileName().toString().equals("libtorch_cpu.so")) {
                torchCpu = true;
                assertTrue(p.startsWith(torchDir), p + " is the preset's");
            }
        }
        assertTrue(torchCpu, "libtorch_cpu.so is listed: " + libs);
        assertTrue(env.at("/kernels/ops_on_cuda").has("rmsNorm"));
        assertTrue(env.at("/cpu_kernels/ops_on_cpu").has("linear"), env.toPrettyString());
        assertFalse(env.at("/cpu_kernels/status").asText().isEmpty());
        // JavaCPP reads no resident size per allocation: set by the natives' loader before JavaCPP initialised
        assertEquals(0, env.at("/java/javacpp_max_physical_bytes").asLong(), env.toPrettyString());

        CliTest.Run text = CliTest.run("env");
        assertEquals(0, text.code(), text.err());
        assertTrue(text.out().contains("libtorch:") && text.out().contains("libtorch_cpu.so"), text.out());
    }
}
