package dev.jtune.distributed;

import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * The order in which the backward finishes the trained tensors' gradients, as "ready groups" numbered 0, 1, … in that
 * order: the reverse of the forward. Group 0 is the head (the final norm and an untied {@code lm_head}), groups 1 … L are
 * the decoder blocks L-1 … 0, group L+1 is everything else: the token and position embeddings, and with them a head
 * tied to the token embedding (the same tensor, listed once under the embedding's name, whose last contribution
 * comes in the embedding's backward). A name this class cannot place also goes to the last group: it is reduced after
 * the backward returns, which is correct, only not overlapped.
 *
 * <p>Names are Hugging Face's (full fine-tuning: {@code model.layers.3.mlp.up_proj.weight},
 * {@code transformer.h.3.attn.c_attn.weight}) or PEFT's for LoRA tensors, which carry their module's name
 * ({@code base_model.model.model.layers.3.self_attn.q_proj.lora_A.weight}).
 */
public final class BackwardOrder {
    /** Llama, Qwen, Mistral ({@code model.layers.N.}) and GPT-2 ({@code transformer.h.N.}) decoder blocks. */
    private static final Pattern BLOCK = Pattern.compile("(?:^|\\.)(?:model\\.layers|transformer\\.h)\\.(\\d+)\\.");
    /** What the backward reaches before the last block: the final norm and the output projection. */
    private static final Pattern HEAD = Pattern.compile("(?:^|\\.)(?:lm_head|model\\.norm|transformer\\.ln_f)\\.");

    private final int blocks;

    /** For a model of {@code blocks} decoder blocks. */
    public BackwardOrder(int blocks) {
        if (blocks < 0) throw new IllegalArgumentException("blocks " + blocks);
        this.blocks = blocks;
    }

    /** Head, blocks, the rest. */
    public int groups() {
        return blocks + 2;
    }

    public int headGroup() {
        return 0;
    }

    /** The group of decoder block {@code i} (0-based, in forward order). */
    public int blockGroup(int i) {
        if (i < 0 || i >= blocks) throw new IndexOutOfBoundsException("block " + i + " of " + blocks);
        return 1 + (blocks - 1 - i);
    }

    /** The group that is only complete when the backward has returned. */
    public int lastGroup() {
        return blocks + 1;
    }

    /** The ready group of the trained tensor named {@code name}. */
    public int groupOf(String name) {
        Matcher m = BLOCK.matcher(name);
        if (m.find()) {
            long i = Long.parseLong(m.group(1));
            return i < blocks ? blockGroup((int) i) : lastGroup();
        }
        return HEAD.matcher(name).find() ? headGroup() : lastGroup();
    }
}
