package dev.jtune.distributed;

import dev.jtune.model.ModelConfig;
import dev.jtune.model.ParameterSpec;
import dev.jtune.peft.Lora;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The buckets of a data-parallel step, without a process group: every trained tensor of the real models' names gets the
 * ready group of its place in the backward (head, blocks last to first, embeddings last), and the buckets follow that
 * order, small first, never mixing dtypes or jumping over a group.
 */
class GradientBucketLayoutTest {

    @ParameterizedTest
    @ValueSource(strings = {"llama-tiny", "qwen3-tiny", "gpt2-tiny"})
    void everyParameterOfAModelGetsTheGroupOfItsPlaceInTheBackward(String name) {
        ModelConfig c = ModelConfig.read(Path.of("src/test/resources/models", name));
        BackwardOrder order = new BackwardOrder(c.numLayers());
        int[] perGroup = new int[order.groups()];
        for (String p : ParameterSpec.of(c).keySet()) {
            int g = order.groupOf(p);
            perGroup[g]++;
            if (p.contains("layers.") || p.contains(".h.")) {
                int block = Integer.parseInt(p.replaceAll(".*(?:layers|\\.h)\\.(\\d+)\\..*", "$1"));
                assertEquals(order.blockGroup(block), g, p);
            } else if (p.contains("embed") || p.contains("wte") || p.contains("wpe")) {
                assertEquals(order.lastGroup(), g, p);
            } else {
                assertEquals(order.headGroup(), g, p + ": the final norm or the head");
            }
        }
        for (int g = 0; g < order.groups(); g++) assertTrue(perGroup[g] > 0, name + ": group " + g + " is empty: " + Arrays.toString(perGroup));
        assertEquals(1, order.blockGroup(c.numLayers() - 1), "the last block right after the head");
        assertEquals(c.numLayers(), order.blockGroup(0));
    }

    @Test
    void loraTensorsGoWithTheirModulesBlockAndUnknownNamesGoLast() {
        BackwardOrder order = new BackwardOrder(4);
        assertEquals(order.blockGroup(3), order.groupOf(Lora.keyA("model.layers.3.self_attn.q_proj")));
        assertEquals(order.blockGroup(0), order.groupOf(Lora.keyB("model.layers.0.mlp.down_proj")));
        assertEquals(order.blockGroup(2), order.groupOf(Lora.keyB("transformer.h.2.attn.c_attn")));
        assertEquals(order.headGroup(), order.groupOf(Lora.keyA("lm_head")));
        assertEquals(order.lastGroup(), order.groupOf("model.layers.9.mlp.up_proj.weight"), "a block the model does not have");
        assertEquals(order.lastGroup(), order.groupOf("something.else"));
        assertEquals(order.lastGroup(), order.groupOf("model.embed_tokens.weight"));
        assertEquals(order.headGroup(), order.groupOf("model.norm.weight"));
        assertEquals(order.blockGroup(1), order.groupOf("model.layers.1.post_attention_layernorm.weight"), "not the final norm");
    }

    @Test
    void bucketsFollowTheGroupsSmallFirstAndSplitOnDtype() {
        // tensors given in the optimizer's (forward) order: embedding, block 0, block 1, head; bytes in KiB
        long k = 1024;
        long[] bytes = {512 * k, 300 * k, 300 * k, 300 * k, 300 * k, 8 * k, 600 * k};
        int[] groupOf = {3, 2, 2, 1, 1, 0, 0};
        int[] kind = {0, 0, 0, 0, 0, 0, 0};
        List<int[]> buckets = GradientBuckets.layout(bytes, kind, groupOf, 700 * k, 1000 * k);
        assertEquals(List.of("[5, 6]", "[3, 4, 1]", "[2, 0]"), strings(buckets), "head first (cap 700 KiB), then blocks 1, 0, the embedding");
        // every bucket's groups are consecutive and later buckets never hold earlier groups
        int lastGroup = -1;
        for (int[] b : buckets) {
            for (int i : b) {
                assertTrue(groupOf[i] >= lastGroup, "backward order");
                lastGroup = groupOf[i];
            }
        }
        // a dtype change starts a new bucket; a tensor above the cap has one of its own
        kind[2] = 1;
        assertEquals(List.of("[5]", "[6, 3]", "[4, 1]", "[2]", "[0]"), strings(GradientBuckets.layout(bytes, kind, groupOf, 100 * k, 1000 * k)));
    }

    private static List<String> strings(List<int[]> buckets) {
        List<String> out = new ArrayList<>();
        for (int[] b : buckets) out.add(Arrays.toString(b));
        return out;
    }
}
