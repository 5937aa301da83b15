#!/usr/bin/env python3
"""Random-weight Llama of a given shape, written twice from the same arrays: a Hugging Face model directory
(config.json, model.safetensors in float32, the GPT-2 tokenizer files) for jtune, and a GGUF file (all tensors F32)
for llama.cpp. Only numpy; nothing is downloaded.

Default shape: the qwen2.5-0.5b decoder (hidden 896, 24 layers, 14 query / 2 KV heads, head_dim 64, intermediate
4864, rope theta 1e6) as a Llama with the GPT-2 vocabulary (50,257, untied head): 448M parameters, 1.79 GB.

The GGUF follows llama.cpp's convert_hf_to_gguf.py for LlamaForCausalLM: tensor names token_embd / blk.N.attn_q ...
/ output, dims innermost first, q_proj and k_proj rows permuted for llama.cpp's rotary layout (HF rotates halves,
llama.cpp rotates adjacent pairs), tokenizer.ggml.model "gpt2" with the tokens and merges of tokenizer.json. When
jtune's own exporter exists (`jtune export --format gguf --type f32`, issue 27), bench/decode/run.sh can take its
file instead (--gguf).

Usage: make_model.py OUT_DIR [--layers N] [--hidden N] [--intermediate N] [--heads N] [--kv-heads N] [--seed N]
Writes OUT_DIR/hf/ and OUT_DIR/model-f32.gguf.
"""
import argparse
import json
import os
import shutil
import struct

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
TOKENIZER = os.path.join(HERE, "..", "..", "..", "shared", "fixtures", "gpt2-tokenizer")


def gguf_string(s):
    b = s.encode("utf-8")
    return struct.pack("<Q", len(b)) + b


# GGUF metadata value types
U32, I32, F32, BOOL, STRING, ARRAY = 4, 5, 6, 7, 8, 9


def gguf_kv(key, vtype, value):
    out = gguf_string(key) + struct.pack("<I", vtype)
    if vtype == U32:
        return out + struct.pack("<I", value)
    if vtype == F32:
        return out + struct.pack("<f", value)
    if vtype == BOOL:
        return out + struct.pack("<?", value)
    if vtype == STRING:
        return out + gguf_string(value)
    etype, items = value
    out += struct.pack("<IQ", etype, len(items))
    if etype == STRING:
        return out + b"".join(gguf_string(s) for s in items)
    if etype == I32:
        return out + np.asarray(items, dtype="<i4").tobytes()
    raise ValueError(etype)


def permute(w, heads):
    """HF q/k rows (heads * hd, D) -> llama.cpp's pairwise rotary order, as convert_hf_to_gguf.LlamaModel.permute."""
    return w.reshape(heads, 2, w.shape[0] // heads // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--layers", type=int, default=24)
    ap.add_argument("--hidden", type=int, default=896)
    ap.add_argument("--intermediate", type=int, default=4864)
    ap.add_argument("--heads", type=int, default=14)
    ap.add_argument("--kv-heads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    tok = json.load(open(os.path.join(TOKENIZER, "tokenizer.json"), encoding="utf-8"))
    vocab_map = tok["model"]["vocab"]
    vocab = len(vocab_map)
    tokens = [None] * vocab
    for t, i in vocab_map.items():
        tokens[i] = t
    special = {t["id"] for t in tok.get("added_tokens", []) if t.get("special")}
    merges = [m if isinstance(m, str) else " ".join(m) for m in tok["model"]["merges"]]
    eos = 50256
    d, inter, layers, heads, kvh = a.hidden, a.intermediate, a.layers, a.heads, a.kv_heads
    hd = d // heads
    theta, eps, ctx = 1000000.0, 1e-6, 4096

    # (HF name, GGUF name, shape, kind): kind is "w" (normal 0.02), "norm" (ones); q/k permuted in the GGUF
    spec = [("model.embed_tokens.weight", "token_embd.weight", (vocab, d), "w", 0)]
    for i in range(layers):
        p, g = f"model.layers.{i}.", f"blk.{i}."
        spec += [
            (p + "input_layernorm.weight", g + "attn_norm.weight", (d,), "norm", 0),
            (p + "self_attn.q_proj.weight", g + "attn_q.weight", (heads * hd, d), "w", heads),
            (p + "self_attn.k_proj.weight", g + "attn_k.weight", (kvh * hd, d), "w", kvh),
            (p + "self_attn.v_proj.weight", g + "attn_v.weight", (kvh * hd, d), "w", 0),
            (p + "self_attn.o_proj.weight", g + "attn_output.weight", (d, heads * hd), "w", 0),
            (p + "post_attention_layernorm.weight", g + "ffn_norm.weight", (d,), "norm", 0),
            (p + "mlp.gate_proj.weight", g + "ffn_gate.weight", (inter, d), "w", 0),
            (p + "mlp.up_proj.weight", g + "ffn_up.weight", (inter, d), "w", 0),
            (p + "mlp.down_proj.weight", g + "ffn_down.weight", (d, inter), "w", 0),
        ]
    spec += [("model.norm.weight", "output_norm.weight", (d,), "norm", 0),
             ("lm_head.weight", "output.weight", (vocab, d), "w", 0)]

    hf = os.path.join(a.out, "hf")
    os.makedirs(hf, exist_ok=True)
    config = {
        "architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": vocab, "hidden_size": d,
        "intermediate_size": inter, "num_hidden_layers": layers, "num_attention_heads": heads,
        "num_key_value_heads": kvh, "head_dim": hd, "hidden_act": "silu", "max_position_embeddings": ctx,
        "rms_norm_eps": eps, "rope_theta": theta, "rope_scaling": None, "initializer_range": 0.02,
        "attention_bias": False, "attention_dropout": 0.0, "tie_word_embeddings": False,
        "bos_token_id": eos, "eos_token_id": eos, "torch_dtype": "float32",
    }
    json.dump(config, open(os.path.join(hf, "config.json"), "w"), indent=2)
    for f in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(os.path.join(TOKENIZER, f), hf)

    # safetensors header
    header, off = {"__metadata__": {"format": "pt"}}, 0
    for name, _, shape, _, _ in spec:
        n = int(np.prod(shape)) * 4
        header[name] = {"dtype": "F32", "shape": list(shape), "data_offsets": [off, off + n]}
        off += n
    hbytes = json.dumps(header, separators=(",", ":")).encode()
    hbytes += b" " * (-len(hbytes) % 8)

    # GGUF header: metadata, tensor infos (offsets aligned to 32)
    kvs = [
        gguf_kv("general.architecture", STRING, "llama"),
        gguf_kv("general.name", STRING, "jtune-decode-bench"),
        gguf_kv("general.file_type", U32, 0),
        gguf_kv("llama.context_length", U32, ctx),
        gguf_kv("llama.embedding_length", U32, d),
        gguf_kv("llama.block_count", U32, layers),
        gguf_kv("llama.feed_forward_length", U32, inter),
        gguf_kv("llama.attention.head_count", U32, heads),
        gguf_kv("llama.attention.head_count_kv", U32, kvh),
        gguf_kv("llama.attention.key_length", U32, hd),
        gguf_kv("llama.attention.value_length", U32, hd),
        gguf_kv("llama.rope.dimension_count", U32, hd),
        gguf_kv("llama.rope.freq_base", F32, theta),
        gguf_kv("llama.attention.layer_norm_rms_epsilon", F32, eps),
        gguf_kv("llama.vocab_size", U32, vocab),
        gguf_kv("tokenizer.ggml.model", STRING, "gpt2"),
        gguf_kv("tokenizer.ggml.pre", STRING, "gpt-2"),
        gguf_kv("tokenizer.ggml.tokens", ARRAY, (STRING, tokens)),
        gguf_kv("tokenizer.ggml.token_type", ARRAY, (I32, [3 if i in special else 1 for i in range(vocab)])),
        gguf_kv("tokenizer.ggml.merges", ARRAY, (STRING, merges)),
        gguf_kv("tokenizer.ggml.bos_token_id", U32, eos),
        gguf_kv("tokenizer.ggml.eos_token_id", U32, eos),
        gguf_kv("tokenizer.ggml.add_bos_token", BOOL, False),
    ]
    infos, goff = [], 0
    for _, gname, shape, _, _ in spec:
        dims = list(reversed(shape))  # innermost first
        infos.append(gguf_string(gname) + struct.pack("<I", len(dims)) + struct.pack(f"<{len(dims)}Q", *dims)
                     + struct.pack("<IQ", 0, goff))   # type 0 = F32
        goff += int(np.prod(shape)) * 4
        goff += -goff % 32
    ghead = b"GGUF" + struct.pack("<IQQ", 3, len(spec), len(kvs)) + b"".join(kvs) + b"".join(infos)
    ghead += b"\0" * (-len(ghead) % 32)

    rng = np.random.default_rng(a.seed)
    with open(os.path.join(hf, "model.safetensors"), "wb") as st, open(os.path.join(a.out, "model-f32.gguf"), "wb") as gg:
        st.write(struct.pack("<Q", len(hbytes)) + hbytes)
        gg.write(ghead)
        for name, gname, shape, kind, perm in spec:
            if kind == "norm":
                w = np.ones(shape, dtype=np.float32)
            else:
                w = (rng.standard_normal(shape, dtype=np.float32) * np.float32(0.02)).astype(np.float32)
            st.write(w.astype("<f4").tobytes())
            g = permute(w, perm) if perm else w
            data = np.ascontiguousarray(g).astype("<f4").tobytes()
            gg.write(data)
            gg.write(b"\0" * (-len(data) % 32))
    n = sum(int(np.prod(s)) for _, _, s, _, _ in spec)
    print(f"{a.out}: {n:,} parameters, {n * 4 / 1e9:.2f} GB in float32 (hf/ and model-f32.gguf)")


if __name__ == "__main__":
    main()
