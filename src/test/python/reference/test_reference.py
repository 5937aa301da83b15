"""Self-checks for the pure-Python reference (stdlib only).

    python3 -m unittest discover -s src/test/python/reference -v
"""

import json
import math
import os
import struct
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_tiny_models as mk  # noqa: E402
import reference_forward as rf  # noqa: E402

MODELS_DIR = mk.DEFAULT_OUT


class Ops(unittest.TestCase):
    def test_rms_norm_known_vector(self):
        # mean(x^2) = (1 + 4 + 9 + 16) / 4 = 7.5
        out = rf.rms_norm([1.0, 2.0, 3.0, 4.0], [1.0, 2.0, 0.5, -1.0], 0.0)
        s = 1 / math.sqrt(7.5)
        for a, b in zip(out, [1 * s, 4 * s, 1.5 * s, -4 * s]):
            self.assertAlmostEqual(a, b, places=14)
        # eps is added inside the square root
        out = rf.rms_norm([0.0, 0.0], [1.0, 1.0], 1e-5)
        self.assertEqual(out, [0.0, 0.0])
        out = rf.rms_norm([1e-3, -1e-3], [1.0, 1.0], 1e-6)
        self.assertAlmostEqual(out[0], 1e-3 / math.sqrt(1e-6 + 1e-6), places=12)

    def test_layer_norm_known_vector(self):
        # mean 2.5, biased variance 1.25
        out = rf.layer_norm([1.0, 2.0, 3.0, 4.0], [1.0, 1.0, 2.0, 1.0], [0.0, 0.5, 0.0, 0.0], 0.0)
        s = 1 / math.sqrt(1.25)
        for a, b in zip(out, [-1.5 * s, -0.5 * s + 0.5, 1.0 * s, 1.5 * s]):
            self.assertAlmostEqual(a, b, places=14)

    def test_activations(self):
        self.assertAlmostEqual(rf.silu(1.0), 1 / (1 + math.exp(-1)), places=15)
        self.assertAlmostEqual(rf.silu(-800.0), 0.0, places=15)  # no overflow
        self.assertEqual(rf.gelu_new(0.0), 0.0)
        # 0.5 * (1 + tanh(sqrt(2/pi) * 1.044715))
        self.assertAlmostEqual(rf.gelu_new(1.0), 0.8411919906082768, places=12)
        self.assertAlmostEqual(rf.gelu_new(-1.0), 0.8411919906082768 - 1.0, places=12)

    def test_softmax_rows_sum_to_one(self):
        for row in ([0.0], [1.0, 2.0, 3.0], [1000.0, 999.0, -5.0], [-3.2, 0.1, 7.7, 7.7]):
            p = rf.softmax(row)
            self.assertAlmostEqual(sum(p), 1.0, places=14)
            self.assertTrue(all(v >= 0 for v in p))
        self.assertAlmostEqual(rf.softmax([0.0, math.log(3.0)])[1], 0.75, places=14)

    def test_linear_and_conv1d_layouts(self):
        # nn.Linear weight [out=2, in=3]; Conv1D weight [in=3, out=2] is its transpose
        w = [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]
        x = [1.0, 0.0, -1.0]
        self.assertEqual(rf.linear(x, w, [0.5, 0.0]), [-1.5, -2.0])
        wt = [[1.0, 4.0], [2.0, 5.0], [3.0, 6.0]]
        self.assertEqual(rf.conv1d(x, wt, [0.5, 0.0]), [-1.5, -2.0])


class Rope(unittest.TestCase):
    def test_rotate_half(self):
        self.assertEqual(rf.rotate_half([1.0, 2.0, 3.0, 4.0]), [-3.0, -4.0, 1.0, 2.0])

    def test_inv_freq(self):
        inv = rf.default_inv_freq(10000.0, 4)
        self.assertEqual(len(inv), 2)
        self.assertAlmostEqual(inv[0], 1.0)
        self.assertAlmostEqual(inv[1], 0.01, places=15)

    def test_rope_hand_computed(self):
        inv = rf.default_inv_freq(10000.0, 4)  # [1, 0.01]
        cos, sin = rf.rope_cos_sin(inv, 3)
        self.assertEqual(len(cos), 4)
        # cat(freqs, freqs): dims i and i + d/2 share angle pos * inv_freq[i]
        self.assertAlmostEqual(cos[0], math.cos(3.0), places=15)
        self.assertAlmostEqual(cos[2], math.cos(3.0), places=15)
        self.assertAlmostEqual(sin[1], math.sin(0.03), places=15)
        self.assertAlmostEqual(sin[3], math.sin(0.03), places=15)
        # x = e0 rotates in the (0, 2) plane: (cos a, 0, sin a, 0)
        out = rf.apply_rotary([1.0, 0.0, 0.0, 0.0], cos, sin)
        exp = [math.cos(3.0), 0.0, math.sin(3.0), 0.0]
        for a, b in zip(out, exp):
            self.assertAlmostEqual(a, b, places=15)
        # x = e2 -> (-sin a, 0, cos a, 0)
        out = rf.apply_rotary([0.0, 0.0, 1.0, 0.0], cos, sin)
        exp = [-math.sin(3.0), 0.0, math.cos(3.0), 0.0]
        for a, b in zip(out, exp):
            self.assertAlmostEqual(a, b, places=15)

    def test_rope_position_zero_is_identity_and_relative(self):
        inv = rf.default_inv_freq(500000.0, 8)
        x = [0.3, -1.0, 2.0, 0.5, 0.1, 0.7, -0.4, 1.1]
        y = [1.0, 0.2, -0.3, 0.9, -1.5, 0.4, 0.6, -0.8]
        c0, s0 = rf.rope_cos_sin(inv, 0)
        self.assertEqual(rf.apply_rotary(x, c0, s0), x)

        def dot_at(m, n):
            cm, sm = rf.rope_cos_sin(inv, m)
            cn, sn = rf.rope_cos_sin(inv, n)
            return sum(a * b for a, b in zip(rf.apply_rotary(x, cm, sm), rf.apply_rotary(y, cn, sn)))
        # q.k depends only on the position difference
        self.assertAlmostEqual(dot_at(5, 2), dot_at(9, 6), places=12)

    def test_llama3_hand_computed(self):
        inv = rf.default_inv_freq(500000.0, 8)
        # 500000^(-i/4): 1, 0.0376060..., 0.00141421..., 5.31829e-05
        self.assertAlmostEqual(inv[2], 1 / math.sqrt(500000.0), places=17)
        out = rf.llama3_inv_freq(inv, 8.0, 1.0, 4.0, 8192)
        self.assertEqual(out[0], inv[0])                 # wavelen 6.28 < 2048: kept
        self.assertEqual(out[1], inv[1])                 # wavelen 167 < 2048: kept
        self.assertAlmostEqual(out[3], inv[3] / 8.0, places=20)  # wavelen 118140 > 8192: / factor
        # wavelen = 2 pi sqrt(500000) = 4442.882938158366
        # smooth = (8192 / 4442.882938158366 - 1) / 3 = 0.28128260...
        # new = (1 - smooth) * f / 8 + smooth * f
        wl = 4442.882938158366
        smooth = (8192 / wl - 1) / 3
        self.assertAlmostEqual(smooth, 0.2812826, places=6)
        self.assertAlmostEqual(out[2], inv[2] * ((1 - smooth) / 8 + smooth), places=18)
        self.assertAlmostEqual(out[2], 0.00052485, places=8)  # 1.41421e-3 * 0.371122

    def test_llama3_band_edges_are_continuous(self):
        old, lo, hi, fac = 8192, 1.0, 4.0, 8.0
        f_hi = 2 * math.pi / (old / hi)  # wavelen exactly at high_freq_wavelen
        f_lo = 2 * math.pi / (old / lo)  # wavelen exactly at low_freq_wavelen
        out = rf.llama3_inv_freq([f_hi * (1 + 1e-12), f_hi, f_lo, f_lo * (1 - 1e-12)], fac, lo, hi, old)
        self.assertAlmostEqual(out[0] / out[1], 1.0, places=9)
        self.assertAlmostEqual(out[1], f_hi, places=15)
        self.assertAlmostEqual(out[2], f_lo / fac, places=15)
        self.assertAlmostEqual(out[3] / out[2], 1.0, places=9)

    def test_llama_fixture_uses_all_three_bands(self):
        cfg = mk.llama_config()
        rs = cfg["rope_scaling"]
        inv = rf.default_inv_freq(cfg["rope_theta"], cfg["head_dim"])
        bands = [rf.llama3_band(f, rs["low_freq_factor"], rs["high_freq_factor"],
                                rs["original_max_position_embeddings"]) for f in inv]
        self.assertEqual(bands, ["kept", "kept", "smoothed", "scaled"])


class Attention(unittest.TestCase):
    def test_probabilities_and_causality(self):
        # values = one-hot of the key position -> output = attention probabilities
        T, d = 4, 2
        q = [[[0.3 * t, -0.2 * t + 0.1]] for t in range(T)]
        k = [[[0.5 - 0.1 * t, 0.4 * t]] for t in range(T)]
        v = [[[1.0 if s == t else 0.0 for s in range(T)]] for t in range(T)]
        out = rf.causal_attention(q, k, v, d ** -0.5)
        for t in range(T):
            self.assertAlmostEqual(sum(out[t]), 1.0, places=14)
            for s in range(t + 1, T):
                self.assertEqual(out[t][s], 0.0)
        self.assertEqual(out[0][0], 1.0)

    def test_repeat_kv(self):
        # 4 query heads over 2 kv heads == 4 heads with kv heads repeated [0,0,1,1]
        q = [[[0.1, 0.2], [0.3, -0.1], [-0.2, 0.5], [0.7, 0.0]] for _ in range(3)]
        k = [[[0.1 * t, 0.3], [-0.2, 0.05 * t]] for t in range(3)]
        v = [[[1.0 + t, -t], [t * t, 2.0]] for t in range(3)]
        gqa = rf.causal_attention(q, k, v, 0.5)
        k4 = [[kt[0], kt[0], kt[1], kt[1]] for kt in k]
        v4 = [[vt[0], vt[0], vt[1], vt[1]] for vt in v]
        mha = rf.causal_attention(q, k4, v4, 0.5)
        self.assertEqual(gqa, mha)

    def test_sliding_window(self):
        # transformers: kv_idx <= q_idx and kv_idx > q_idx - W
        self.assertEqual(list(rf.visible_keys(0, 3)), [0])
        self.assertEqual(list(rf.visible_keys(2, 3)), [0, 1, 2])
        self.assertEqual(list(rf.visible_keys(5, 3)), [3, 4, 5])
        self.assertEqual(list(rf.visible_keys(5, None)), [0, 1, 2, 3, 4, 5])
        # with one-hot values the output is the attention probabilities: zero outside the window
        T, W = 6, 2
        q = [[[0.3 * t, 0.1]] for t in range(T)]
        k = [[[0.5 - 0.1 * t, 0.4 * t]] for t in range(T)]
        v = [[[1.0 if s == t else 0.0 for s in range(T)]] for t in range(T)]
        out = rf.causal_attention(q, k, v, 0.5, W)
        full = rf.causal_attention(q, k, v, 0.5)
        for t in range(T):
            self.assertAlmostEqual(sum(out[t]), 1.0, places=14)
            for s in range(T):
                if not t - W < s <= t:
                    self.assertEqual(out[t][s], 0.0)
        self.assertEqual(out[:W], full[:W])   # the first W queries see everything anyway
        self.assertNotEqual(out[W], full[W])


# ---------------------------------------------------------------------------
# fixtures on disk
# ---------------------------------------------------------------------------

def read_safetensors_independently(path):
    """A second, separate reader: returns (header_len, header, data_len)."""
    with open(path, "rb") as f:
        size_bytes = f.read(8)
        n = int.from_bytes(size_bytes, "little")
        header_bytes = f.read(n)
        data = f.read()
    return n, header_bytes, json.loads(header_bytes), len(data), data


EXPECTED_NAMES = {
    "llama-tiny": (["model.embed_tokens.weight", "model.norm.weight", "lm_head.weight"],
                   ["input_layernorm.weight", "post_attention_layernorm.weight",
                    "self_attn.q_proj.weight", "self_attn.k_proj.weight", "self_attn.v_proj.weight",
                    "self_attn.o_proj.weight", "mlp.gate_proj.weight", "mlp.up_proj.weight",
                    "mlp.down_proj.weight"]),
    "mistral-tiny": None,  # same as llama
    "mistral-window-tiny": None,
    "qwen2-tiny": (["model.embed_tokens.weight", "model.norm.weight"],
                   ["input_layernorm.weight", "post_attention_layernorm.weight",
                    "self_attn.q_proj.weight", "self_attn.k_proj.weight", "self_attn.v_proj.weight",
                    "self_attn.q_proj.bias", "self_attn.k_proj.bias", "self_attn.v_proj.bias",
                    "self_attn.o_proj.weight", "mlp.gate_proj.weight", "mlp.up_proj.weight",
                    "mlp.down_proj.weight"]),
    "qwen3-tiny": (["model.embed_tokens.weight", "model.norm.weight", "lm_head.weight"],
                   ["input_layernorm.weight", "post_attention_layernorm.weight",
                    "self_attn.q_proj.weight", "self_attn.k_proj.weight", "self_attn.v_proj.weight",
                    "self_attn.o_proj.weight", "self_attn.q_norm.weight", "self_attn.k_norm.weight",
                    "mlp.gate_proj.weight", "mlp.up_proj.weight", "mlp.down_proj.weight"]),
    "gpt2-tiny": (["transformer.wte.weight", "transformer.wpe.weight", "transformer.ln_f.weight",
                   "transformer.ln_f.bias"],
                  ["ln_1.weight", "ln_1.bias", "attn.c_attn.weight", "attn.c_attn.bias",
                   "attn.c_proj.weight", "attn.c_proj.bias", "ln_2.weight", "ln_2.bias",
                   "mlp.c_fc.weight", "mlp.c_fc.bias", "mlp.c_proj.weight", "mlp.c_proj.bias"]),
}


def expected_names(model):
    top, per_layer = EXPECTED_NAMES[model] or EXPECTED_NAMES["llama-tiny"]
    prefix = "transformer.h.%d." if model == "gpt2-tiny" else "model.layers.%d."
    return set(top) | {prefix % i + n for i in range(2) for n in per_layer}


class Fixtures(unittest.TestCase):
    def test_safetensors_files_parse_back(self):
        sizes = {"F32": 4, "BF16": 2}
        for model in mk.MODELS:
            with self.subTest(model=model):
                path = os.path.join(MODELS_DIR, model, "model.safetensors")
                n, hbytes, header, data_len, _ = read_safetensors_independently(path)
                self.assertEqual((8 + n) % 8, 0, "header not 8-aligned")
                self.assertEqual(hbytes.rstrip(b" ")[-1:], b"}")
                self.assertEqual(header.pop("__metadata__"), {"format": "pt"})
                self.assertEqual(set(header), expected_names(model))
                spans = sorted(tuple(v["data_offsets"]) for v in header.values())
                self.assertEqual(spans[0][0], 0)
                for (b0, e0), (b1, e1) in zip(spans, spans[1:]):
                    self.assertEqual(e0, b1, "hole or overlap")
                self.assertEqual(spans[-1][1], data_len, "trailing bytes")
                want_dtype = "BF16" if model == "qwen2-tiny" else "F32"
                for name, info in header.items():
                    self.assertEqual(info["dtype"], want_dtype)
                    count = 1
                    for s in info["shape"]:
                        count *= s
                    b, e = info["data_offsets"]
                    self.assertEqual(e - b, count * sizes[info["dtype"]], name)

    def test_shapes(self):
        def shape(model, name):
            _, _, header, _, _ = read_safetensors_independently(
                os.path.join(MODELS_DIR, model, "model.safetensors"))
            return header[name]["shape"]
        self.assertEqual(shape("qwen3-tiny", "model.layers.0.self_attn.q_proj.weight"), [64, 32])
        self.assertEqual(shape("qwen3-tiny", "model.layers.0.self_attn.k_proj.weight"), [32, 32])
        self.assertEqual(shape("qwen3-tiny", "model.layers.0.self_attn.o_proj.weight"), [32, 64])
        self.assertEqual(shape("qwen3-tiny", "model.layers.1.self_attn.q_norm.weight"), [16])
        self.assertEqual(shape("llama-tiny", "model.layers.0.self_attn.k_proj.weight"), [16, 32])
        self.assertEqual(shape("mistral-tiny", "model.layers.0.self_attn.v_proj.weight"), [8, 32])
        self.assertEqual(shape("gpt2-tiny", "transformer.h.0.attn.c_attn.weight"), [32, 96])
        self.assertEqual(shape("gpt2-tiny", "transformer.h.0.mlp.c_fc.weight"), [32, 128])
        self.assertEqual(shape("gpt2-tiny", "transformer.h.0.mlp.c_proj.weight"), [128, 32])
        self.assertEqual(shape("gpt2-tiny", "transformer.wpe.weight"), [64, 32])

    def test_bf16_values_read_back_exactly(self):
        path = os.path.join(MODELS_DIR, "qwen2-tiny", "model.safetensors")
        _, _, header, _, data = read_safetensors_independently(path)
        info = header["model.norm.weight"]
        b, e = info["data_offsets"]
        raw = data[b:e]
        first = struct.unpack("<f", b"\x00\x00" + raw[0:2])[0]
        loaded = rf.load_safetensors(path)["model.norm.weight"][1]
        self.assertEqual(loaded[0], first)
        # bf16 values have at most 8 significant bits
        for v in loaded:
            bits = struct.unpack("<I", struct.pack("<f", v))[0]
            self.assertEqual(bits & 0xFFFF, 0)

    def test_fixtures_are_reproducible(self):
        with tempfile.TemporaryDirectory() as tmp:
            for model in mk.MODELS:
                mk.make(model, tmp)
                for fn in ("config.json", "generation_config.json", "model.safetensors", "reference_logits.json"):
                    with open(os.path.join(tmp, model, fn), "rb") as a, \
                            open(os.path.join(MODELS_DIR, model, fn), "rb") as b:
                        self.assertEqual(a.read(), b.read(), "%s/%s is stale" % (model, fn))

    def test_reference_json_shape(self):
        for model in mk.MODELS:
            with self.subTest(model=model):
                with open(os.path.join(MODELS_DIR, model, "reference_logits.json")) as f:
                    ref = json.load(f)
                self.assertEqual([len(s) for s in ref["input_ids"]], [12, 7])
                self.assertTrue(all(0 <= t < 128 for s in ref["input_ids"] for t in s))
                self.assertEqual([len(s) for s in ref["logits"]], [12, 7])
                self.assertTrue(all(len(row) == 128 for s in ref["logits"] for row in s))
                self.assertEqual(ref["greedy"]["prompt"], ref["input_ids"][1])
                self.assertEqual(len(ref["greedy"]["new_tokens"]), 8)
                # the last-position argmax of the prompt is the first greedy token
                last = ref["logits"][1][-1]
                self.assertEqual(rf.argmax(last), ref["greedy"]["new_tokens"][0])

    def test_configs(self):
        for model in mk.MODELS:
            with open(os.path.join(MODELS_DIR, model, "config.json")) as f:
                cfg = json.load(f)
            self.assertEqual(cfg["vocab_size"], 128)
            self.assertIn(cfg["model_type"], ("llama", "mistral", "qwen2", "qwen3", "gpt2"))
            tied = cfg.get("tie_word_embeddings")
            _, _, header, _, _ = read_safetensors_independently(
                os.path.join(MODELS_DIR, model, "model.safetensors"))
            self.assertEqual("lm_head.weight" in header, not tied, model)


class Causality(unittest.TestCase):
    def test_logits_do_not_see_the_future(self):
        ids = [5, 17, 99, 3, 64, 127, 0, 42]
        changed = ids[:4] + [1, 2, 3, 4]
        for model in mk.MODELS:
            with self.subTest(model=model):
                m = rf.load_model(os.path.join(MODELS_DIR, model))
                a = m.forward(ids)
                b = m.forward(changed)
                self.assertEqual(a[:4], b[:4])
                self.assertNotEqual(a[4], b[4])
                # a prefix run gives the same logits as the longer run
                self.assertEqual(m.forward(ids[:3]), a[:3])

    def test_distinguishing_features_matter(self):
        """Dropping a feature (q_norm, biases, llama3 scaling, tying) must
        change the logits, i.e. the fixtures really exercise it."""
        ids = [5, 17, 99, 3, 64, 127, 0, 42, 11, 12, 13, 14]
        m = rf.load_model(os.path.join(MODELS_DIR, "llama-tiny"))
        base = m.forward(ids)
        m.inv_freq = rf.default_inv_freq(500000.0, 8)
        self.assertGreater(max(abs(x - y) for x, y in zip(base[-1], m.forward(ids)[-1])), 1e-6)

        m = rf.load_model(os.path.join(MODELS_DIR, "qwen3-tiny"))
        base = m.forward(ids)
        m.model_type = "llama"  # skips q_norm / k_norm
        self.assertGreater(max(abs(x - y) for x, y in zip(base[-1], m.forward(ids)[-1])), 1e-3)

        m = rf.load_model(os.path.join(MODELS_DIR, "qwen2-tiny"))
        base = m.forward(ids)
        m.model_type = "llama"  # skips q/k/v biases
        self.assertGreater(max(abs(x - y) for x, y in zip(base[-1], m.forward(ids)[-1])), 1e-3)

        m = rf.load_model(os.path.join(MODELS_DIR, "mistral-window-tiny"))
        w = m.sliding_window
        self.assertLess(w, len(ids))
        base = m.forward(ids)
        m.sliding_window = None  # full causal attention
        full = m.forward(ids)
        self.assertEqual(base[:w], full[:w])   # positions < W see everything either way
        self.assertGreater(max(abs(x - y) for x, y in zip(base[-1], full[-1])), 1e-3)


class Bf16Rounding(unittest.TestCase):
    def bf(self, bits):
        return mk.f32_to_bf16_bits(mk.bits_f32(bits))

    def test_known_patterns(self):
        self.assertEqual(self.bf(0x3F800000), 0x3F80)  # 1.0 exact
        self.assertEqual(self.bf(0xBF800000), 0xBF80)  # -1.0
        self.assertEqual(self.bf(0x00000000), 0x0000)
        self.assertEqual(self.bf(0x80000000), 0x8000)  # -0.0
        self.assertEqual(self.bf(0x3F807FFF), 0x3F80)  # below half: down
        self.assertEqual(self.bf(0x3F808001), 0x3F81)  # above half: up
        self.assertEqual(self.bf(0x3F808000), 0x3F80)  # tie, even lsb: stays
        self.assertEqual(self.bf(0x3F818000), 0x3F82)  # tie, odd lsb: up to even
        self.assertEqual(self.bf(0x3FFF8000), 0x4000)  # carry into exponent
        self.assertEqual(self.bf(0x7F7FFFFF), 0x7F80)  # f32 max rounds to inf
        self.assertEqual(self.bf(0x7F800000), 0x7F80)  # inf
        self.assertEqual(self.bf(0xFF800000), 0xFF80)  # -inf
        nan = self.bf(0x7F800001)
        self.assertEqual(nan & 0x7F80, 0x7F80)
        self.assertNotEqual(nan & 0x007F, 0)  # still NaN, not inf
        self.assertEqual(self.bf(0x00010000), 0x0001)  # subnormal kept

    def test_values(self):
        self.assertEqual(mk.bf16_bits_to_float(self.bf(0x3F800000)), 1.0)
        # 1 + 2^-8 is a tie between 1 and 1 + 2^-7 -> even -> 1.0
        self.assertEqual(mk.bf16_bits_to_float(mk.f32_to_bf16_bits(1.0 + 2 ** -8)), 1.0)
        self.assertEqual(mk.bf16_bits_to_float(mk.f32_to_bf16_bits(1.0 + 3 * 2 ** -8)), 1.0 + 2 ** -6)
        self.assertEqual(mk.bf16_bits_to_float(mk.f32_to_bf16_bits(3.140625)), 3.140625)


if __name__ == "__main__":
    unittest.main()
