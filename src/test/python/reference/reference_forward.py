"""Pure-Python (stdlib only) reference forward passes for tiny causal LMs.

Written from the Hugging Face transformers modeling code (modeling_llama,
modeling_mistral, modeling_qwen2, modeling_qwen3, modeling_gpt2 and
modeling_rope_utils), step by step, in Python floats (IEEE double).  It
shares no code with the Java side of jtune.

Tensors are handled as nested Python lists.  Weight matrices of nn.Linear
layers are [out, in] (y = x W^T + b); GPT-2's Conv1D weights are [in, out]
(y = x W + b), exactly as stored in the checkpoints.
"""

import json
import math
import struct

# ---------------------------------------------------------------------------
# safetensors loading (the model's own stored weights are the only input)
# ---------------------------------------------------------------------------

_DTYPE_SIZES = {"F32": 4, "BF16": 2, "F16": 2}


def _decode(dtype, raw):
    if dtype == "F32":
        return list(struct.unpack("<%df" % (len(raw) // 4), raw))
    if dtype == "BF16":
        halves = struct.unpack("<%dH" % (len(raw) // 2), raw)
        # a bf16 value is the top 16 bits of the f32 with the same value
        packed = struct.pack("<%dI" % len(halves), *[h << 16 for h in halves])
        return list(struct.unpack("<%df" % len(halves), packed))
    if dtype == "F16":
        return list(struct.unpack("<%de" % (len(raw) // 2), raw))
    raise ValueError("unsupported dtype " + dtype)


def load_safetensors(path):
    """Returns {name: (shape, flat list of floats)}."""
    with open(path, "rb") as f:
        blob = f.read()
    (n,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8:8 + n].decode("utf-8"))
    data = blob[8 + n:]
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        begin, end = info["data_offsets"]
        out[name] = (list(info["shape"]), _decode(info["dtype"], data[begin:end]))
    return out


def as_matrix(tensor):
    shape, flat = tensor
    rows, cols = shape
    return [flat[r * cols:(r + 1) * cols] for r in range(rows)]


# ---------------------------------------------------------------------------
# elementary ops
# ---------------------------------------------------------------------------

def linear(x, w_rows, bias=None):
    """nn.Linear: y[o] = sum_i x[i] * W[o][i] (+ b[o]); W is [out, in]."""
    y = [sum(xi * wi for xi, wi in zip(x, row)) for row in w_rows]
    if bias is not None:
        y = [a + b for a, b in zip(y, bias)]
    return y


def conv1d(x, w_rows, bias):
    """GPT-2 Conv1D: y = x @ W + b with W stored as [in, out]."""
    out = len(w_rows[0])
    y = list(bias)
    for xi, row in zip(x, w_rows):
        for o in range(out):
            y[o] += xi * row[o]
    return y


def rms_norm(x, weight, eps):
    """LlamaRMSNorm: weight * (x * rsqrt(mean(x^2) + eps))."""
    variance = sum(v * v for v in x) / len(x)
    inv = 1.0 / math.sqrt(variance + eps)
    return [w * (v * inv) for v, w in zip(x, weight)]


def layer_norm(x, weight, bias, eps):
    """nn.LayerNorm: biased variance, (x - mean) / sqrt(var + eps) * w + b."""
    n = len(x)
    mean = sum(x) / n
    var = sum((v - mean) ** 2 for v in x) / n
    inv = 1.0 / math.sqrt(var + eps)
    return [(v - mean) * inv * w + b for v, w, b in zip(x, weight, bias)]


def silu(v):
    if v >= 0:
        return v / (1.0 + math.exp(-v))
    e = math.exp(v)
    return v * e / (1.0 + e)


def gelu_new(v):
    """transformers.activations.NewGELUActivation (tanh approximation)."""
    return 0.5 * v * (1.0 + math.tanh(math.sqrt(2.0 / math.pi) * (v + 0.044715 * v ** 3)))


def softmax(row):
    m = max(row)
    e = [math.exp(v - m) for v in row]
    s = sum(e)
    return [v / s for v in e]


def argmax(row):
    best = 0
    for i, v in enumerate(row):
        if v > row[best]:
            best = i
    return best


# ---------------------------------------------------------------------------
# rotary position embeddings (modeling_rope_utils + apply_rotary_pos_emb)
# ---------------------------------------------------------------------------

def default_inv_freq(theta, dim):
    """inv_freq = 1 / theta^(arange(0, dim, 2) / dim)."""
    return [1.0 / (theta ** (i / dim)) for i in range(0, dim, 2)]


def llama3_inv_freq(inv_freq, factor, low_freq_factor, high_freq_factor, old_context_len):
    """_compute_llama3_parameters: keep high frequencies, divide low ones by
    factor, smoothly interpolate the medium band."""
    low_freq_wavelen = old_context_len / low_freq_factor
    high_freq_wavelen = old_context_len / high_freq_factor
    out = []
    for f in inv_freq:
        wavelen = 2 * math.pi / f
        f_llama = f / factor if wavelen > low_freq_wavelen else f
        is_medium = (not wavelen < high_freq_wavelen) and (not wavelen > low_freq_wavelen)
        if is_medium:
            smooth = (old_context_len / wavelen - low_freq_factor) / (high_freq_factor - low_freq_factor)
            f_llama = (1 - smooth) * f_llama / factor + smooth * f_llama
        out.append(f_llama)
    return out


def llama3_band(inv_freq_value, low_freq_factor, high_freq_factor, old_context_len):
    """Which branch of the llama3 adjustment a frequency falls in."""
    wavelen = 2 * math.pi / inv_freq_value
    if wavelen < old_context_len / high_freq_factor:
        return "kept"
    if wavelen > old_context_len / low_freq_factor:
        return "scaled"
    return "smoothed"


def rope_cos_sin(inv_freq, position, attention_scaling=1.0):
    """cos/sin of emb = cat(freqs, freqs) with freqs = position * inv_freq."""
    freqs = [position * f for f in inv_freq]
    emb = freqs + freqs
    return ([math.cos(a) * attention_scaling for a in emb],
            [math.sin(a) * attention_scaling for a in emb])


def rotate_half(x):
    h = len(x) // 2
    return [-v for v in x[h:]] + list(x[:h])


def apply_rotary(x, cos, sin):
    r = rotate_half(x)
    return [a * c + b * s for a, b, c, s in zip(x, r, cos, sin)]


# ---------------------------------------------------------------------------
# attention
# ---------------------------------------------------------------------------

def visible_keys(t, sliding_window=None):
    """The key positions query t attends to.  transformers' masking_utils:
    causal_mask_function is kv_idx <= q_idx; sliding_window_overlay(W) is
    kv_idx > q_idx - W (Mistral uses both when config.sliding_window is not
    None: create_sliding_window_causal_mask).  So W keys: t-W+1 .. t."""
    lo = 0 if sliding_window is None else max(0, t - sliding_window + 1)
    return range(lo, t + 1)


def causal_attention(q, k, v, scaling, sliding_window=None):
    """q: [T][H][d], k/v: [T][KV][d].  repeat_kv: query head h reads kv head
    h // (H // KV).  Returns [T][H*d] (heads concatenated, as after
    transpose(1, 2).reshape).  Query t sees visible_keys(t, sliding_window)."""
    T = len(q)
    H = len(q[0])
    KV = len(k[0])
    n_rep = H // KV
    out = []
    for t in range(T):
        row = []
        for h in range(H):
            kvh = h // n_rep
            qv = q[t][h]
            keys = visible_keys(t, sliding_window)
            scores = [sum(a * b for a, b in zip(qv, k[s][kvh])) * scaling for s in keys]
            # masked positions get exp(-inf) = 0 and are simply left out
            p = softmax(scores)
            d = len(v[0][kvh])
            o = [0.0] * d
            for i, s in enumerate(keys):
                ps = p[i]
                vs = v[s][kvh]
                for j in range(d):
                    o[j] += ps * vs[j]
            row.extend(o)
        out.append(row)
    return out


def split_heads(x, n_heads, head_dim):
    return [x[h * head_dim:(h + 1) * head_dim] for h in range(n_heads)]


class Weights:
    """A model's tensors by name: vectors as lists, matrices as row lists (converted once, cached)."""

    def __init__(self, config, tensors):
        self.c = config
        self.t = tensors
        self._cache = {}

    def vec(self, name):
        return self.t[name][1]

    def mat(self, name):
        if name not in self._cache:
            self._cache[name] = as_matrix(self.t[name])
        return self._cache[name]


# ---------------------------------------------------------------------------
# Llama / Mistral / Qwen2 / Qwen3
# ---------------------------------------------------------------------------

class LlamaLike(Weights):
    """LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM and
    Qwen3ForCausalLM share this structure; the differences are switched by
    model_type: Qwen2 has q/k/v biases (never o_proj); Qwen3 has q_norm /
    k_norm (RMSNorm over head_dim, per head, before rope); Llama and Qwen3
    use config.attention_bias for q/k/v/o; Llama may use llama3 rope."""

    def __init__(self, config, tensors):
        super().__init__(config, tensors)
        c = config
        self.model_type = c["model_type"]
        self.H = c["num_attention_heads"]
        self.KV = c.get("num_key_value_heads") or self.H
        self.hd = c.get("head_dim") or c["hidden_size"] // self.H
        self.eps = c["rms_norm_eps"]
        self.scaling = self.hd ** -0.5
        inv = default_inv_freq(float(c.get("rope_theta", 10000.0)), self.hd)
        rs = c.get("rope_scaling")
        if rs:
            rtype = rs.get("rope_type", rs.get("type"))
            if rtype != "llama3":
                raise ValueError("only llama3 rope scaling is implemented, got %r" % rtype)
            inv = llama3_inv_freq(inv, rs["factor"], rs["low_freq_factor"], rs["high_freq_factor"],
                                  rs["original_max_position_embeddings"])
        self.inv_freq = inv
        # modeling_mistral: a sliding-window mask when config.sliding_window is not None.  (Qwen2/3 window only
        # with use_sliding_window, per layer from max_window_layers: not transcribed, so refused.)
        self.sliding_window = c.get("sliding_window") if self.model_type == "mistral" else None
        if self.model_type in ("qwen2", "qwen3") and c.get("use_sliding_window", False):
            raise ValueError("Qwen sliding windows are not implemented")
        if c.get("hidden_act", "silu") != "silu":
            raise ValueError("only silu MLPs are implemented")


    def opt_vec(self, name):
        return self.t[name][1] if name in self.t else None

    def _proj(self, prefix, which, x):
        bias = None
        if self.model_type == "qwen2":
            if which in ("q", "k", "v"):
                bias = self.vec("%s.%s_proj.bias" % (prefix, which))
        elif self.c.get("attention_bias", False):
            bias = self.vec("%s.%s_proj.bias" % (prefix, which))
        return linear(x, self.mat("%s.%s_proj.weight" % (prefix, which)), bias)

    def attention(self, i, xs):
        p = "model.layers.%d.self_attn" % i
        q, k, v = [], [], []
        for pos, x in enumerate(xs):
            qh = split_heads(self._proj(p, "q", x), self.H, self.hd)
            kh = split_heads(self._proj(p, "k", x), self.KV, self.hd)
            vh = split_heads(self._proj(p, "v", x), self.KV, self.hd)
            if self.model_type == "qwen3":
                qn, kn = self.vec(p + ".q_norm.weight"), self.vec(p + ".k_norm.weight")
                qh = [rms_norm(h, qn, self.eps) for h in qh]
                kh = [rms_norm(h, kn, self.eps) for h in kh]
            cos, sin = rope_cos_sin(self.inv_freq, pos)
            q.append([apply_rotary(h, cos, sin) for h in qh])
            k.append([apply_rotary(h, cos, sin) for h in kh])
            v.append(vh)
        att = causal_attention(q, k, v, self.scaling, self.sliding_window)
        return [self._proj(p, "o", a) for a in att]

    def mlp(self, i, x):
        p = "model.layers.%d.mlp" % i
        mb = self.c.get("mlp_bias", False)
        g = linear(x, self.mat(p + ".gate_proj.weight"), self.vec(p + ".gate_proj.bias") if mb else None)
        u = linear(x, self.mat(p + ".up_proj.weight"), self.vec(p + ".up_proj.bias") if mb else None)
        a = [silu(gi) * ui for gi, ui in zip(g, u)]
        return linear(a, self.mat(p + ".down_proj.weight"), self.vec(p + ".down_proj.bias") if mb else None)

    def forward(self, ids):
        emb = self.mat("model.embed_tokens.weight")
        h = [list(emb[t]) for t in ids]
        for i in range(self.c["num_hidden_layers"]):
            ln1 = self.vec("model.layers.%d.input_layernorm.weight" % i)
            a = self.attention(i, [rms_norm(x, ln1, self.eps) for x in h])
            h = [[x + y for x, y in zip(r, d)] for r, d in zip(h, a)]
            ln2 = self.vec("model.layers.%d.post_attention_layernorm.weight" % i)
            h = [[x + y for x, y in zip(r, self.mlp(i, rms_norm(r, ln2, self.eps)))] for r in h]
        fn = self.vec("model.norm.weight")
        h = [rms_norm(x, fn, self.eps) for x in h]
        if self.c.get("tie_word_embeddings", False):
            head = emb
        else:
            head = self.mat("lm_head.weight")
        return [linear(x, head) for x in h]


# ---------------------------------------------------------------------------
# GPT-2
# ---------------------------------------------------------------------------

class GPT2(Weights):
    def __init__(self, config, tensors):
        super().__init__(config, tensors)
        self.E = config["n_embd"]
        self.H = config["n_head"]
        self.hd = self.E // self.H
        self.eps = config["layer_norm_epsilon"]
        if config.get("activation_function", "gelu_new") != "gelu_new":
            raise ValueError("only gelu_new is implemented")
        if config.get("scale_attn_by_inverse_layer_idx") or config.get("scale_attn_weights") is False:
            raise ValueError("only the default attention scaling is implemented")


    def forward(self, ids):
        wte = self.mat("transformer.wte.weight")
        wpe = self.mat("transformer.wpe.weight")
        h = [[a + b for a, b in zip(wte[t], wpe[pos])] for pos, t in enumerate(ids)]
        scale = 1.0 / math.sqrt(self.hd)  # attn_weights / value.size(-1) ** 0.5
        for i in range(self.c["n_layer"]):
            p = "transformer.h.%d." % i
            q, k, v = [], [], []
            for x in h:
                x = layer_norm(x, self.vec(p + "ln_1.weight"), self.vec(p + "ln_1.bias"), self.eps)
                qkv = conv1d(x, self.mat(p + "attn.c_attn.weight"), self.vec(p + "attn.c_attn.bias"))
                E = self.E
                q.append(split_heads(qkv[:E], self.H, self.hd))
                k.append(split_heads(qkv[E:2 * E], self.H, self.hd))
                v.append(split_heads(qkv[2 * E:], self.H, self.hd))
            att = causal_attention(q, k, v, scale)
            att = [conv1d(a, self.mat(p + "attn.c_proj.weight"), self.vec(p + "attn.c_proj.bias")) for a in att]
            h = [[x + y for x, y in zip(r, d)] for r, d in zip(h, att)]
            new_h = []
            for r in h:
                x = layer_norm(r, self.vec(p + "ln_2.weight"), self.vec(p + "ln_2.bias"), self.eps)
                x = conv1d(x, self.mat(p + "mlp.c_fc.weight"), self.vec(p + "mlp.c_fc.bias"))
                x = [gelu_new(a) for a in x]
                x = conv1d(x, self.mat(p + "mlp.c_proj.weight"), self.vec(p + "mlp.c_proj.bias"))
                new_h.append([a + b for a, b in zip(r, x)])
            h = new_h
        h = [layer_norm(x, self.vec("transformer.ln_f.weight"), self.vec("transformer.ln_f.bias"), self.eps)
             for x in h]
        return [linear(x, wte) for x in h]  # lm_head tied to wte


def build_model(config, tensors):
    mt = config["model_type"]
    if mt in ("llama", "mistral", "qwen2", "qwen3"):
        return LlamaLike(config, tensors)
    if mt == "gpt2":
        return GPT2(config, tensors)
    raise ValueError("unsupported model_type " + mt)


def load_model(model_dir):
    import os
    with open(os.path.join(model_dir, "config.json")) as f:
        config = json.load(f)
    tensors = load_safetensors(os.path.join(model_dir, "model.safetensors"))
    return build_model(config, tensors)


def greedy_with_margins(model, prompt, new_tokens):
    """Greedy decoding with a full recompute of the sequence at each step.
    Also returns, per step, the gap between the best and second-best logit
    (a small gap would make the greedy comparison fragile)."""
    ids = list(prompt)
    out, gaps = [], []
    for _ in range(new_tokens):
        row = model.forward(ids)[-1]
        nxt = argmax(row)
        top = sorted(row, reverse=True)
        gaps.append(top[0] - top[1])
        out.append(nxt)
        ids.append(nxt)
    return out, gaps


def greedy(model, prompt, new_tokens):
    return greedy_with_margins(model, prompt, new_tokens)[0]
