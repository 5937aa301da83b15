package dev.jtune.quant;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.jtune.cli.CliTest;
import dev.jtune.io.SafetensorsFile;
import dev.jtune.io.SafetensorsWriter;
import dev.jtune.util.Tensors;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.Tensor;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.function.Consumer;

import static org.junit.jupiter.api.Assertions.assertEquals;

/**
 * Damaged 4-bit checkpoints are refused (exit 2) with a message naming the tensor: an unknown quant type
 * (in the name or in the state), a quant state that disagrees with the tensors' shape, absmax and map
 * tensors of the wrong size or dtype, missing and stray parts, an 8-bit config. Each case edits one
 * thing in a real file written by {@code jtune quantize}.
 */
@SuppressWarnings("try")
class QuantizedMalformedTest {
    static final String W = "model.layers.0.mlp.up_proj.weight";   // (64, 32): 2048 values, 32 blocks
    static final ObjectMapper JSON = new ObjectMapper();
    @TempDir
    static Path tmp;
    static Path good;
    static int n;

    @BeforeAll
    static void quantize() {
        good = tmp.resolve("good");
        ModelQuantizer.quantize(Path.of("src/test/resources/models/llama-tiny"), good, QuantType.NF4, true, List.of(),
                ModelQuantizer.MAX_SHARD_BYTES);
        assertEquals(0, CliTest.run("inspect", good.toString()).code());
    }

    /** A copy of the good directory with its tensors edited by {@code edit}; returns inspect's result. */
    static CliTest.Run inspectEdited(Consumer<Map<String, Tensor>> edit) throws IOException {
        Path dir = tmp.resolve("bad" + (n++));
        Files.createDirectories(dir);
        Files.copy(good.resolve("config.json"), dir.resolve("config.json"));
        try (PointerScope scope = new PointerScope(); SafetensorsFile f = SafetensorsFile.open(good.resolve("model.safetensors"))) {
            Map<String, Tensor> tensors = new LinkedHashMap<>();
            for (String name : f.tensors().keySet()) tensors.put(name, f.tensor(name).clone());
            edit.accept(tensors);
            SafetensorsWriter.write(dir.resolve("model.safetensors"), tensors, Map.of("format", "pt"));
        }
        return CliTest.run("inspect", dir.toString());
    }

    static void setState(Map<String, Tensor> t, String key, String json) {
        t.put(W + "." + key, dev.jtune.util.Tensors.bytes(json.getBytes(StandardCharsets.UTF_8)));
    }

    static String state(Map<String, Tensor> t) {
        return new String(dev.jtune.util.Tensors.toBytes(t.get(W + ".quant_state.bitsandbytes__nf4")), StandardCharsets.UTF_8);
    }

    @Test
    void unknownQuantTypeInTheName() throws IOException {
        CliTest.Run r = inspectEdited(t -> {
            Tensor s = t.remove(W + ".quant_state.bitsandbytes__nf4");
            t.put(W + ".quant_state.bitsandbytes__int4", s);
        });
        QuantizedCheckpointTest.assertUserError(r, W + ".quant_state.bitsandbytes__int4", "unknown 4-bit quant type 'int4'");
    }

    @Test
    void unknownQuantTypeInTheState() throws IOException {
        CliTest.Run r = inspectEdited(t -> setState(t, "quant_state.bitsandbytes__nf4", state(t).replace("\"nf4\"", "\"af4\"")));
        QuantizedCheckpointTest.assertUserError(r, W + ".quant_state.bitsandbytes__nf4", "unknown 4-bit quant type 'af4'");
    }

    @Test
    void stateTypeDisagreesWithTheName() throws IOException {
        CliTest.Run r = inspectEdited(t -> setState(t, "quant_state.bitsandbytes__nf4", state(t).replace("\"nf4\"", "\"fp4\"")));
        QuantizedCheckpointTest.assertUserError(r, W + ".quant_state.bitsandbytes__nf4", "quant_type 'fp4'", "'nf4'");
    }

    @Test
    void stateShapeDisagreesWithTheCodes() throws IOException {
        CliTest.Run r = inspectEdited(t -> setState(t, "quant_state.bitsandbytes__nf4", state(t).replace("[64, 32]", "[64, 33]")));
        QuantizedCheckpointTest.assertUserError(r, "tensor '" + W + "'", "expected 1056 U8 values", "[64, 33]", "found U8 [1024, 1]");
    }

    @Test
    void stateShapeDisagreesWithConfig() throws IOException {
        // 2048 values either way, so the codes fit; config.json says (64, 32)
        CliTest.Run r = inspectEdited(t -> setState(t, "quant_state.bitsandbytes__nf4", state(t).replace("[64, 32]", "[32, 64]")));
        QuantizedCheckpointTest.assertUserError(r, W + ": expected [64, 32], found [32, 64] (from its quant state)");
    }

    @Test
    void absmaxOfTheWrongSize() throws IOException {
        CliTest.Run r = inspectEdited(t -> t.put(W + ".absmax", t.get(W + ".absmax").narrow(0, 0, 31).clone()));
        QuantizedCheckpointTest.assertUserError(r, "tensor '" + W + ".absmax'", "expected 32 U8 values", "found U8 [31]");
    }

    @Test
    void absmaxOfTheWrongDtype() throws IOException {
        CliTest.Run r = inspectEdited(t -> t.put(W + ".absmax", t.get(W + ".absmax").to(org.bytedeco.pytorch.global.torch.ScalarType.Float)));
        QuantizedCheckpointTest.assertUserError(r, "tensor '" + W + ".absmax'", "expected 32 U8 values", "found F32 [32]");
    }

    @Test
    void quantMapOfTheWrongSize() throws IOException {
        CliTest.Run r = inspectEdited(t -> t.put(W + ".quant_map", Tensors.floats(new float[15])));
        QuantizedCheckpointTest.assertUserError(r, "tensor '" + W + ".quant_map'", "expected 16 F32 values", "found F32 [15]");
    }

    @Test
    void nestedMapAndAbsmaxOfTheWrongSize() throws IOException {
        QuantizedCheckpointTest.assertUserError(inspectEdited(t -> t.put(W + ".nested_quant_map", Tensors.floats(new float[128]))),
                "tensor '" + W + ".nested_quant_map'", "expected 256 F32 values");
        QuantizedCheckpointTest.assertUserError(inspectEdited(t -> t.put(W + ".nested_absmax", Tensors.floats(new float[2]))),
                "tensor '" + W + ".nested_absmax'", "expected 1 F32 values");
    }

    @Test
    void missingAndStrayParts() throws IOException {
        QuantizedCheckpointTest.assertUserError(inspectEdited(t -> t.remove(W + ".absmax")), "'" + W + ".absmax' is missing");
        QuantizedCheckpointTest.assertUserError(inspectEdited(t -> t.remove(W + ".quant_state.bitsandbytes__nf4")),
                "'" + W + ".absmax' belongs to a quantized weight", "no quant state");
        // a state without the nested keys next to nested tensors: the absmax (uint8) no longer fits either
        QuantizedCheckpointTest.assertUserError(inspectEdited(t -> setState(t, "quant_state.bitsandbytes__nf4",
                "{\"quant_type\": \"nf4\", \"blocksize\": 64, \"dtype\": \"float32\", \"shape\": [64, 32]}")),
                "tensor '" + W + ".absmax'", "expected 32 F32 values");
    }

    @Test
    void stateThatIsNotJsonOrHasBadKeys() throws IOException {
        QuantizedCheckpointTest.assertUserError(inspectEdited(t -> setState(t, "quant_state.bitsandbytes__nf4", "{not json")),
                W + ".quant_state.bitsandbytes__nf4", "not valid JSON");
        QuantizedCheckpointTest.assertUserError(inspectEdited(t -> setState(t, "quant_state.bitsandbytes__nf4",
                state(t).replace("\"blocksize\": 64", "\"blocksize\": 48"))), "'blocksize' must be one of");
        QuantizedCheckpointTest.assertUserError(inspectEdited(t -> setState(t, "quant_state.bitsandbytes__nf4",
                state(t).replace("\"dtype\": \"float32\"", "\"dtype\": \"int8\""))), "dtype 'int8'");
        QuantizedCheckpointTest.assertUserError(inspectEdited(t -> setState(t, "quant_state.bitsandbytes__nf4",
                state(t).replace("\"shape\"", "\"shapes\""))), "unknown quant state key 'shapes'");
    }

    @Test
    void eightBitConfigIsRefused() throws IOException {
        Path dir = tmp.resolve("int8");
        Files.createDirectories(dir);
        Files.copy(good.resolve("model.safetensors"), dir.resolve("model.safetensors"));
        ObjectNode config = (ObjectNode) JSON.readTree(good.resolve("config.json").toFile());
        ObjectNode qc = (ObjectNode) config.get("quantization_config");
        qc.put("load_in_4bit", false).put("_load_in_4bit", false).put("load_in_8bit", true);
        Files.writeString(dir.resolve("config.json"), config.toString());
        QuantizedCheckpointTest.assertUserError(CliTest.run("inspect", dir.toString()), "config.json", "only 4-bit", "8-bit");
    }
}
