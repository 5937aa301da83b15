#!/usr/bin/env python3
"""Writes tiny random-init Hugging Face model directories and their
pure-Python reference logits (stdlib only, deterministic).

    python3 src/test/python/reference/make_tiny_models.py [--out DIR]

For each architecture it writes into <out>/<name>/:
  config.json, generation_config.json, model.safetensors (own writer),
  reference_logits.json (computed by reference_forward.py in double from
  the weights read back from model.safetensors).
"""

import argparse
import json
import math
import os
import random
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import reference_forward as rf  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.normpath(os.path.join(HERE, "..", "..", "..", ".."))
DEFAULT_OUT = os.path.join(REPO, "src", "test", "resources", "models")

# config.json's transformers_version field: the oldest release that knows all
# five architectures (Qwen3 arrived in 4.51).  These files are not written by
# transformers; the field only keeps the layout save_pretrained produces.
TRANSFORMERS_VERSION = "4.51.0"

VOCAB = 128
WEIGHT_STD = 0.15
NEW_TOKENS = 8

# ---------------------------------------------------------------------------
# number formats
# ---------------------------------------------------------------------------


def f32_bits(x):
    return struct.unpack("<I", struct.pack("<f", x))[0]


def bits_f32(b):
    return struct.unpack("<f", struct.pack("<I", b))[0]


def to_f32(x):
    """Round a double to the nearest float32 (round-to-nearest-even)."""
    return struct.unpack("<f", struct.pack("<f", x))[0]


def f32_to_bf16_bits(x):
    """bf16 bit pattern of float32 x, round-to-nearest-even (as torch's
    .to(torch.bfloat16)); NaN stays a quiet NaN."""
    b = f32_bits(x)
    if (b & 0x7F800000) == 0x7F800000 and (b & 0x007FFFFF):
        return ((b >> 16) | 0x0040) & 0xFFFF
    lsb = (b >> 16) & 1
    return ((b + 0x7FFF + lsb) >> 16) & 0xFFFF


def bf16_bits_to_float(h):
    return bits_f32(h << 16)


# ---------------------------------------------------------------------------
# safetensors writer
# ---------------------------------------------------------------------------


def encode(dtype, values):
    if dtype == "F32":
        return struct.pack("<%df" % len(values), *values)
    if dtype == "BF16":
        return struct.pack("<%dH" % len(values), *[f32_to_bf16_bits(v) for v in values])
    raise ValueError(dtype)


def write_safetensors(path, tensors, dtype):
    """tensors: {name: (shape, flat values)}; all in one dtype.  Data laid out
    contiguously in sorted name order, header JSON padded with spaces so that
    8 + len(header) is a multiple of 8."""
    header = {}
    chunks = []
    offset = 0
    for name in sorted(tensors):
        shape, flat = tensors[name]
        n = 1
        for s in shape:
            n *= s
        assert n == len(flat), name
        raw = encode(dtype, flat)
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [offset, offset + len(raw)]}
        chunks.append(raw)
        offset += len(raw)
    header["__metadata__"] = {"format": "pt"}
    hjson = json.dumps(header, separators=(",", ":")).encode("utf-8")
    hjson += b" " * ((8 - len(hjson) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hjson)))
        f.write(hjson)
        for c in chunks:
            f.write(c)


# ---------------------------------------------------------------------------
# random weights
# ---------------------------------------------------------------------------


class Init:
    def __init__(self, seed):
        self.rng = random.Random(seed)
        self.tensors = {}

    def normal(self, name, shape, std=WEIGHT_STD, mean=0.0):
        n = 1
        for s in shape:
            n *= s
        self.tensors[name] = (list(shape), [mean + std * self.rng.gauss(0.0, 1.0) for _ in range(n)])

    def weight(self, name, shape):
        self.normal(name, shape)

    def norm(self, name, dim):
        self.normal(name, [dim], std=0.1, mean=1.0)

    def bias(self, name, dim):
        self.normal(name, [dim], std=0.1)


def llama_like_weights(cfg, seed):
    w = Init(seed)
    E = cfg["hidden_size"]
    H = cfg["num_attention_heads"]
    KV = cfg["num_key_value_heads"]
    hd = cfg.get("head_dim") or E // H
    I = cfg["intermediate_size"]
    mt = cfg["model_type"]
    w.weight("model.embed_tokens.weight", [VOCAB, E])
    for i in range(cfg["num_hidden_layers"]):
        p = "model.layers.%d." % i
        w.norm(p + "input_layernorm.weight", E)
        w.weight(p + "self_attn.q_proj.weight", [H * hd, E])
        w.weight(p + "self_attn.k_proj.weight", [KV * hd, E])
        w.weight(p + "self_attn.v_proj.weight", [KV * hd, E])
        w.weight(p + "self_attn.o_proj.weight", [E, H * hd])
        if mt == "qwen2":
            w.bias(p + "self_attn.q_proj.bias", H * hd)
            w.bias(p + "self_attn.k_proj.bias", KV * hd)
            w.bias(p + "self_attn.v_proj.bias", KV * hd)
        if mt == "qwen3":
            w.norm(p + "self_attn.q_norm.weight", hd)
            w.norm(p + "self_attn.k_norm.weight", hd)
        w.norm(p + "post_attention_layernorm.weight", E)
        w.weight(p + "mlp.gate_proj.weight", [I, E])
        w.weight(p + "mlp.up_proj.weight", [I, E])
        w.weight(p + "mlp.down_proj.weight", [E, I])
    w.norm("model.norm.weight", E)
    if not cfg["tie_word_embeddings"]:
        w.weight("lm_head.weight", [VOCAB, E])
    return w.tensors


def gpt2_weights(cfg, seed):
    w = Init(seed)
    E = cfg["n_embd"]
    inner = cfg.get("n_inner") or 4 * E
    w.weight("transformer.wte.weight", [VOCAB, E])
    w.weight("transformer.wpe.weight", [cfg["n_positions"], E])
    for i in range(cfg["n_layer"]):
        p = "transformer.h.%d." % i
        w.norm(p + "ln_1.weight", E)
        w.bias(p + "ln_1.bias", E)
        w.weight(p + "attn.c_attn.weight", [E, 3 * E])  # Conv1D: [in, out]
        w.bias(p + "attn.c_attn.bias", 3 * E)
        w.weight(p + "attn.c_proj.weight", [E, E])
        w.bias(p + "attn.c_proj.bias", E)
        w.norm(p + "ln_2.weight", E)
        w.bias(p + "ln_2.bias", E)
        w.weight(p + "mlp.c_fc.weight", [E, inner])
        w.bias(p + "mlp.c_fc.bias", inner)
        w.weight(p + "mlp.c_proj.weight", [inner, E])
        w.bias(p + "mlp.c_proj.bias", E)
    w.norm("transformer.ln_f.weight", E)
    w.bias("transformer.ln_f.bias", E)
    return w.tensors


# ---------------------------------------------------------------------------
# configs (key order and fields as save_pretrained writes them)
# ---------------------------------------------------------------------------


def llama_config():
    return {
        "architectures": ["LlamaForCausalLM"],
        "attention_bias": False,
        "attention_dropout": 0.0,
        "bos_token_id": 1,
        "eos_token_id": 2,
        "head_dim": 8,
        "hidden_act": "silu",
        "hidden_size": 32,
        "initializer_range": 0.02,
        "intermediate_size": 64,
        "max_position_embeddings": 131072,
        "mlp_bias": False,
        "model_type": "llama",
        "num_attention_heads": 4,
        "num_hidden_layers": 2,
        "num_key_value_heads": 2,
        "pretraining_tp": 1,
        "rms_norm_eps": 1e-05,
        # head_dim 8 -> inv_freq = 500000^(-i/4), i = 0..3, wavelengths
        # 6.28, 167, 4443, 118140.  With original_max_position_embeddings 8192
        # the bands are: < 2048 kept (i=0,1), 2048..8192 smoothed (i=2),
        # > 8192 divided by factor (i=3).
        "rope_scaling": {
            "factor": 8.0,
            "high_freq_factor": 4.0,
            "low_freq_factor": 1.0,
            "original_max_position_embeddings": 8192,
            "rope_type": "llama3",
        },
        "rope_theta": 500000.0,
        "tie_word_embeddings": False,
        "torch_dtype": "float32",
        "transformers_version": TRANSFORMERS_VERSION,
        "use_cache": True,
        "vocab_size": VOCAB,
    }


def mistral_config():
    return {
        "architectures": ["MistralForCausalLM"],
        "attention_dropout": 0.0,
        "bos_token_id": 1,
        "eos_token_id": 2,
        "head_dim": 8,
        "hidden_act": "silu",
        "hidden_size": 32,
        "initializer_range": 0.02,
        "intermediate_size": 64,
        "max_position_embeddings": 256,
        "model_type": "mistral",
        "num_attention_heads": 4,
        "num_hidden_layers": 2,
        "num_key_value_heads": 1,
        "rms_norm_eps": 1e-05,
        "rope_theta": 10000.0,
        "sliding_window": None,
        "tie_word_embeddings": False,
        "torch_dtype": "float32",
        "transformers_version": TRANSFORMERS_VERSION,
        "use_cache": True,
        "vocab_size": VOCAB,
    }


def mistral_window_config():
    """Mistral with a sliding window of 4 tokens, shorter than the 12-id test sequence and the 7 + 8 greedy
    decode, so the window changes the logits (and the KV-cache decode must apply it too)."""
    cfg = mistral_config()
    cfg["sliding_window"] = 4
    return cfg


def qwen2_config():
    return {
        "architectures": ["Qwen2ForCausalLM"],
        "attention_dropout": 0.0,
        "bos_token_id": 1,
        "eos_token_id": 2,
        "hidden_act": "silu",
        "hidden_size": 32,
        "initializer_range": 0.02,
        "intermediate_size": 64,
        "max_position_embeddings": 256,
        "max_window_layers": 2,
        "model_type": "qwen2",
        "num_attention_heads": 4,
        "num_hidden_layers": 2,
        "num_key_value_heads": 2,
        "rms_norm_eps": 1e-06,
        "rope_scaling": None,
        "rope_theta": 1000000.0,
        "sliding_window": None,
        "tie_word_embeddings": True,
        "torch_dtype": "bfloat16",
        "transformers_version": TRANSFORMERS_VERSION,
        "use_cache": True,
        "use_sliding_window": False,
        "vocab_size": VOCAB,
    }


def qwen3_config():
    return {
        "architectures": ["Qwen3ForCausalLM"],
        "attention_bias": False,
        "attention_dropout": 0.0,
        "bos_token_id": 1,
        "eos_token_id": 2,
        "head_dim": 16,
        "hidden_act": "silu",
        "hidden_size": 32,
        "initializer_range": 0.02,
        "intermediate_size": 64,
        "max_position_embeddings": 256,
        "max_window_layers": 2,
        "model_type": "qwen3",
        "num_attention_heads": 4,
        "num_hidden_layers": 2,
        "num_key_value_heads": 2,
        "rms_norm_eps": 1e-06,
        "rope_scaling": None,
        "rope_theta": 1000000.0,
        "sliding_window": None,
        "tie_word_embeddings": False,
        "torch_dtype": "float32",
        "transformers_version": TRANSFORMERS_VERSION,
        "use_cache": True,
        "use_sliding_window": False,
        "vocab_size": VOCAB,
    }


def gpt2_config():
    return {
        "activation_function": "gelu_new",
        "architectures": ["GPT2LMHeadModel"],
        "attn_pdrop": 0.1,
        "bos_token_id": 127,
        "embd_pdrop": 0.1,
        "eos_token_id": 127,
        "initializer_range": 0.02,
        "layer_norm_epsilon": 1e-05,
        "model_type": "gpt2",
        "n_embd": 32,
        "n_head": 4,
        "n_inner": None,
        "n_layer": 2,
        "n_positions": 64,
        "reorder_and_upcast_attn": False,
        "resid_pdrop": 0.1,
        "scale_attn_by_inverse_layer_idx": False,
        "scale_attn_weights": True,
        "summary_activation": None,
        "summary_first_dropout": 0.1,
        "summary_proj_to_labels": True,
        "summary_type": "cls_index",
        "summary_use_proj": True,
        "tie_word_embeddings": True,
        "torch_dtype": "float32",
        "transformers_version": TRANSFORMERS_VERSION,
        "use_cache": True,
        "vocab_size": VOCAB,
    }


# name -> (config factory, weight factory, safetensors dtype, seed)
MODELS = {
    "llama-tiny": (llama_config, llama_like_weights, "F32", 1001),
    "mistral-tiny": (mistral_config, llama_like_weights, "F32", 1002),
    "mistral-window-tiny": (mistral_window_config, llama_like_weights, "F32", 1008),
    "qwen2-tiny": (qwen2_config, llama_like_weights, "BF16", 1003),
    "qwen3-tiny": (qwen3_config, llama_like_weights, "F32", 1004),
    "gpt2-tiny": (gpt2_config, gpt2_weights, "F32", 1007),  # 1005 greedy-repeats one token
}


def input_ids():
    rng = random.Random(20240601)
    return [[rng.randrange(VOCAB) for _ in range(12)], [rng.randrange(VOCAB) for _ in range(7)]]


def generation_config(cfg):
    return {
        "_from_model_config": True,
        "bos_token_id": cfg["bos_token_id"],
        "eos_token_id": cfg["eos_token_id"],
        "transformers_version": TRANSFORMERS_VERSION,
    }


def dump_json(path, obj, indent=2):
    with open(path, "w") as f:
        json.dump(obj, f, indent=indent, sort_keys=False)
        f.write("\n")


def write_logits_json(path, produced_by, ids, logits, prompt, new_tokens):
    """Compact layout: one line per position; floats as repr (shortest
    round-tripping double)."""
    lines = ["{", '  "produced_by": %s,' % json.dumps(produced_by),
             '  "input_ids": %s,' % json.dumps(ids), '  "logits": [']
    for si, seq in enumerate(logits):
        lines.append("    [")
        for ti, row in enumerate(seq):
            lines.append("      [" + ", ".join(repr(float(v)) for v in row) + "]"
                         + ("," if ti + 1 < len(seq) else ""))
        lines.append("    ]" + ("," if si + 1 < len(logits) else ""))
    lines.append("  ],")
    lines.append('  "greedy": {"prompt": %s, "new_tokens": %s}' % (json.dumps(prompt), json.dumps(new_tokens)))
    lines.append("}")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


def make(name, out_root):
    cfg_fn, w_fn, dtype, seed = MODELS[name]
    cfg = cfg_fn()
    d = os.path.join(out_root, name)
    os.makedirs(d, exist_ok=True)
    tensors = w_fn(cfg, seed)
    dump_json(os.path.join(d, "config.json"), cfg)
    dump_json(os.path.join(d, "generation_config.json"), generation_config(cfg))
    write_safetensors(os.path.join(d, "model.safetensors"), tensors, dtype)

    # The reference is computed from what was stored, read back from disk.
    model = rf.load_model(d)
    ids = input_ids()
    logits = [model.forward(seq) for seq in ids]
    prompt = ids[1]
    new, gaps = rf.greedy_with_margins(model, prompt, NEW_TOKENS)
    if min(gaps) < 1e-3:
        raise SystemExit("%s: greedy step with top-2 logit gap %g; pick another seed" % (name, min(gaps)))
    write_logits_json(os.path.join(d, "reference_logits.json"),
                      "jtune src/test/python/reference/reference_forward.py (pure Python, float64 from the stored weights)",
                      ids, logits, prompt, new)
    return d, cfg, logits, new, gaps


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", default=DEFAULT_OUT)
    ap.add_argument("--only", nargs="*", default=None)
    args = ap.parse_args(argv)
    for name in args.only or MODELS:
        d, cfg, logits, new, gaps = make(name, args.out)
        flat = [v for seq in logits for row in seq for v in row]
        spread = max(flat) - min(flat)
        print("%-13s %s  logits range %.3f  greedy %s  min top-2 gap %.4f"
              % (name, os.path.relpath(d, REPO), spread, new, min(gaps)))


if __name__ == "__main__":
    main()
