"""Independent reference for jtune's training step: a short full fine-tuning run of the tiny GPT-2
fixture (src/test/resources/models/gpt2-tiny), updated exactly as transformers' Trainer updates it.

Written in PyTorch from transformers' source, sharing no code with jtune:
- the model's forward is written here (modeling_gpt2: wte + wpe, pre-norm blocks, Conv1D layout,
  gelu_new, tied output head); model dropout is off (jtune has none);
- the parameter groups are transformers' Trainer.get_decay_parameter_names: every parameter except those
  inside an nn.LayerNorm and those whose name matches bias / layernorm / rmsnorm / norm patterns
  (so the embeddings DO decay);
- torch.optim.AdamW over those two groups (weight_decay and 0.0);
- the learning rate is a LambdaLR with transformers' lr_lambda (here: linear with warmup);
- gradient accumulation as transformers >= 4.46 does it: each micro-batch's summed token loss is divided
  by the number of target tokens of the whole accumulated batch (num_items_in_batch);
- clip_grad_norm_(max_grad_norm) and the logged grad_norm is its return value: the norm BEFORE clipping;
- the logged learning rate is the one the step used (_get_learning_rate before lr_scheduler.step()).

It also computes, for every lr_scheduler_type, transformers' lr_lambda values at chosen steps, and it
re-runs the training with a wrong rule (embeddings excluded from decay; loss averaged per micro-batch;
the clipped norm logged) to show that the comparison in TrainerReferenceTest would catch each.

Run:  /usr/bin/python3 src/test/python/trainer_reference/trainer_reference.py
Writes src/test/resources/trainer_reference/reference_run.json (committed; CI needs no torch).
"""

import json
import math
import os
import re
import struct
from functools import partial

import torch
from torch import nn

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", "..", "..", ".."))
MODEL_DIR = os.path.join(ROOT, "src", "test", "resources", "models", "gpt2-tiny")
OUT = os.path.join(ROOT, "src", "test", "resources", "trainer_reference", "reference_run.json")

# the run (also written into the JSON so the Java test reads them from there)
HP = dict(learning_rate=2e-2, weight_decay=0.5, adam_beta1=0.85, adam_beta2=0.95, adam_epsilon=1e-6,
          max_grad_norm=0.5, warmup_steps=3, max_steps=10, gradient_accumulation_steps=3,
          lr_scheduler_type="linear", rows=2, length=12)
IGNORE_INDEX = -100

torch.manual_seed(0)
torch.set_num_threads(1)


# ---------------------------------------------------------------------------------------------
# weights
# ---------------------------------------------------------------------------------------------

def load_safetensors(path):
    with open(path, "rb") as f:
        blob = f.read()
    (n,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8:8 + n].decode("utf-8"))
    data = blob[8 + n:]
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        assert info["dtype"] == "F32", info
        b, e = info["data_offsets"]
        vals = struct.unpack("<%df" % ((e - b) // 4), data[b:e])
        out[name] = torch.tensor(vals, dtype=torch.float32).reshape(info["shape"])
    return out


# ---------------------------------------------------------------------------------------------
# the model: modeling_gpt2's module tree and names, so that the decay rule sees what transformers sees
# ---------------------------------------------------------------------------------------------

class Conv1D(nn.Module):
    """transformers.pytorch_utils.Conv1D: weight (in, out), y = x @ W + b."""

    def __init__(self, w, b):
        super().__init__()
        self.weight = nn.Parameter(w.clone())
        self.bias = nn.Parameter(b.clone())

    def forward(self, x):
        return torch.addmm(self.bias, x.reshape(-1, x.size(-1)), self.weight).reshape(*x.shape[:-1], self.weight.size(1))


def layer_norm(w, b, eps):
    ln = nn.LayerNorm(w.numel(), eps=eps)
    with torch.no_grad():
        ln.weight.copy_(w)
        ln.bias.copy_(b)
    return ln


class Attention(nn.Module):
    def __init__(self, sd, p, heads):
        super().__init__()
        self.c_attn = Conv1D(sd[p + "c_attn.weight"], sd[p + "c_attn.bias"])
        self.c_proj = Conv1D(sd[p + "c_proj.weight"], sd[p + "c_proj.bias"])
        self.heads = heads

    def forward(self, x):
        b, t, d = x.shape
        hd = d // self.heads
        q, k, v = self.c_attn(x).split(d, dim=2)
        q, k, v = (z.view(b, t, self.heads, hd).transpose(1, 2) for z in (q, k, v))
        att = (q @ k.transpose(-1, -2)) / math.sqrt(hd)
        causal = torch.ones(t, t, dtype=torch.bool).tril()
        att = att.masked_fill(~causal, torch.finfo(att.dtype).min).softmax(-1)
        return self.c_proj((att @ v).transpose(1, 2).reshape(b, t, d))


class Mlp(nn.Module):
    def __init__(self, sd, p):
        super().__init__()
        self.c_fc = Conv1D(sd[p + "c_fc.weight"], sd[p + "c_fc.bias"])
        self.c_proj = Conv1D(sd[p + "c_proj.weight"], sd[p + "c_proj.bias"])

    def forward(self, x):
        h = self.c_fc(x)
        h = 0.5 * h * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (h + 0.044715 * torch.pow(h, 3.0))))   # gelu_new
        return self.c_proj(h)


class Block(nn.Module):
    def __init__(self, sd, i, cfg):
        super().__init__()
        p = "transformer.h.%d." % i
        eps = cfg["layer_norm_epsilon"]
        self.ln_1 = layer_norm(sd[p + "ln_1.weight"], sd[p + "ln_1.bias"], eps)
        self.attn = Attention(sd, p + "attn.", cfg["n_head"])
        self.ln_2 = layer_norm(sd[p + "ln_2.weight"], sd[p + "ln_2.bias"], eps)
        self.mlp = Mlp(sd, p + "mlp.")

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class Transformer(nn.Module):
    def __init__(self, sd, cfg):
        super().__init__()
        self.wte = nn.Embedding(cfg["vocab_size"], cfg["n_embd"])
        self.wpe = nn.Embedding(cfg["n_positions"], cfg["n_embd"])
        with torch.no_grad():
            self.wte.weight.copy_(sd["transformer.wte.weight"])
            self.wpe.weight.copy_(sd["transformer.wpe.weight"])
        self.h = nn.ModuleList([Block(sd, i, cfg) for i in range(cfg["n_layer"])])
        self.ln_f = layer_norm(sd["transformer.ln_f.weight"], sd["transformer.ln_f.bias"], cfg["layer_norm_epsilon"])


class Gpt2LMHead(nn.Module):
    def __init__(self, sd, cfg):
        super().__init__()
        self.transformer = Transformer(sd, cfg)

    def forward(self, ids):
        tr = self.transformer
        x = tr.wte(ids) + tr.wpe(torch.arange(ids.size(1)).unsqueeze(0))
        for block in tr.h:
            x = block(x)
        return tr.ln_f(x) @ tr.wte.weight.t()   # tied lm_head


# ---------------------------------------------------------------------------------------------
# transformers' rules, transcribed
# ---------------------------------------------------------------------------------------------

def get_parameter_names(model, forbidden_layer_types, forbidden_layer_names=None):
    """trainer_pt_utils.get_parameter_names."""
    patterns = [re.compile(p) for p in (forbidden_layer_names or [])]
    result = []
    for name, child in model.named_children():
        child_params = get_parameter_names(child, forbidden_layer_types, forbidden_layer_names)
        result += [
            f"{name}.{n}" for n in child_params
            if not isinstance(child, tuple(forbidden_layer_types))
            and not any(p.search(f"{name}.{n}".lower()) for p in patterns)
        ]
    result += [k for k in model._parameters if not any(p.search(k.lower()) for p in patterns)]
    return result


def get_decay_parameter_names(model):
    """Trainer.get_decay_parameter_names."""
    forbidden = [r"bias", r"layernorm", r"rmsnorm", r"(?:^|\.)norm(?:$|\.)", r"_norm(?:$|\.)"]
    return get_parameter_names(model, [nn.LayerNorm], forbidden)


def _warm(step, warmup):
    return float(step) / float(max(1, warmup))


def lr_lambda(kind, step, warmup, total, lr, **kw):
    """optimization.py's _get_*_lr_lambda for every SchedulerType jtune implements."""
    if kind == "constant":
        return 1.0
    if kind == "constant_with_warmup":
        if step < warmup:
            return float(step) / float(max(1.0, warmup))
        return 1.0
    if step < warmup:
        return _warm(step, warmup)
    if kind == "linear":
        return max(0.0, float(total - step) / float(max(1, total - warmup)))
    progress = float(step - warmup) / float(max(1, total - warmup))
    if kind == "cosine":
        return max(0.0, 0.5 * (1.0 + math.cos(math.pi * float(kw.get("num_cycles", 0.5)) * 2.0 * progress)))
    if kind == "cosine_with_restarts":
        if progress >= 1.0:
            return 0.0
        return max(0.0, 0.5 * (1.0 + math.cos(math.pi * ((float(kw.get("num_cycles", 1)) * progress) % 1.0))))
    if kind == "cosine_with_min_lr":
        rate = kw["min_lr"] / lr if "min_lr" in kw else kw["min_lr_rate"]
        factor = 0.5 * (1.0 + math.cos(math.pi * float(kw.get("num_cycles", 0.5)) * 2.0 * progress))
        factor = factor * (1 - rate) + rate
        return max(0, factor)
    if kind == "polynomial":
        lr_end, power = kw.get("lr_end", 1e-7), kw.get("power", 1.0)
        if step > total:
            return lr_end / lr
        decay_steps = total - warmup
        pct_remaining = 1 - (step - warmup) / decay_steps
        decay = (lr - lr_end) * pct_remaining ** power + lr_end
        return decay / lr
    if kind == "inverse_sqrt":
        timescale = kw.get("timescale") or (warmup or 10_000)
        shift = timescale - warmup
        return 1.0 / math.sqrt((step + shift) / timescale)
    raise ValueError(kind)


# ---------------------------------------------------------------------------------------------
# data: fixed token ids; the first positions of each row are prompt (label -100), a different number per row
# ---------------------------------------------------------------------------------------------

def make_batches(vocab):
    state = 12345
    def rnd(n):
        nonlocal state
        state = (state * 1103515245 + 12345) % (1 << 31)
        return state % n
    steps = []
    for s in range(HP["max_steps"]):
        micro = []
        for m in range(HP["gradient_accumulation_steps"]):
            ids, labels = [], []
            for r in range(HP["rows"]):
                row = [rnd(vocab) for _ in range(HP["length"])]
                prompt = 1 + rnd(HP["length"] - 3)          # 1..length-3 masked positions
                ids.append(row)
                labels.append([IGNORE_INDEX] * prompt + row[prompt:])
            micro.append({"input_ids": ids, "labels": labels})
        steps.append(micro)
    return steps


def targets(labels):
    """(t, t+1) pairs with labels[t+1] != -100: the tokens the loss averages over."""
    return int((labels[:, 1:] != IGNORE_INDEX).sum())


def run(steps, sd, cfg, variant=None):
    model = Gpt2LMHead(sd, cfg)
    decay = get_decay_parameter_names(model)
    if variant == "embeddings_not_decayed":
        decay = [n for n in decay if "wte" not in n and "wpe" not in n]
    named = list(model.named_parameters())
    groups = [
        {"params": [p for n, p in named if n in decay and p.requires_grad], "weight_decay": HP["weight_decay"]},
        {"params": [p for n, p in named if n not in decay and p.requires_grad], "weight_decay": 0.0},
    ]
    opt = torch.optim.AdamW(groups, lr=HP["learning_rate"], betas=(HP["adam_beta1"], HP["adam_beta2"]),
                            eps=HP["adam_epsilon"])
    sched = torch.optim.lr_scheduler.LambdaLR(opt, partial(
        lambda s: lr_lambda(HP["lr_scheduler_type"], s, HP["warmup_steps"], HP["max_steps"], HP["learning_rate"])))
    params = [p for _, p in named]
    out = []
    for micro in steps:
        tensors = [(torch.tensor(b["input_ids"]), torch.tensor(b["labels"])) for b in micro]
        num_items = sum(targets(l) for _, l in tensors)
        loss_logged = 0.0
        for ids, labels in tensors:
            logits = model(ids)
            shift_logits = logits[:, :-1, :].reshape(-1, logits.size(-1)).float()
            shift_labels = labels[:, 1:].reshape(-1)
            loss_sum = nn.functional.cross_entropy(shift_logits, shift_labels, ignore_index=IGNORE_INDEX, reduction="sum")
            denom = targets(labels) if variant == "per_micro_batch_mean" else num_items
            loss = loss_sum / denom
            if variant == "per_micro_batch_mean":
                loss = loss / len(tensors)
            loss.backward()
            loss_logged += loss.item()
        norm = float(torch.nn.utils.clip_grad_norm_(params, HP["max_grad_norm"]))
        if variant == "clipped_norm_logged":
            norm = float(torch.norm(torch.stack([p.grad.norm() for p in params])))
        lr_used = sched.get_last_lr()[0]
        opt.step()
        sched.step()
        opt.zero_grad()
        out.append({"loss": loss_logged, "grad_norm": norm, "learning_rate": lr_used})
    return out, decay


def max_rel(a, b, key):
    return max(abs(x[key] - y[key]) / abs(y[key]) for x, y in zip(a, b) if y[key] != 0)


def main():
    with open(os.path.join(MODEL_DIR, "config.json")) as f:
        cfg = json.load(f)
    sd = load_safetensors(os.path.join(MODEL_DIR, "model.safetensors"))
    steps = make_batches(cfg["vocab_size"])
    ref, decay = run(steps, sd, cfg)
    sensitivity = {}
    for v in ["embeddings_not_decayed", "per_micro_batch_mean", "clipped_norm_logged"]:
        other, _ = run(steps, sd, cfg, v)
        key = "grad_norm" if v == "clipped_norm_logged" else "loss"
        sensitivity[v] = {"compared": key, "max_relative_difference": max_rel(other, ref, key)}
        assert sensitivity[v]["max_relative_difference"] > 1e-3, (v, sensitivity[v])
    clipped = sum(1 for r in ref if r["grad_norm"] > HP["max_grad_norm"])
    assert clipped >= 8, "clipping must be active in most steps: %d" % clipped

    # every scheduler, at every step of a 20-step run with 5 warmup steps (and past the end)
    schedules = []
    cases = [("linear", {}), ("cosine", {}), ("cosine", {"num_cycles": 1.5}), ("cosine_with_restarts", {}),
             ("cosine_with_restarts", {"num_cycles": 3}), ("cosine_with_min_lr", {"min_lr_rate": 0.1}),
             ("cosine_with_min_lr", {"min_lr": 1e-4, "num_cycles": 0.75}), ("polynomial", {}),
             ("polynomial", {"lr_end": 1e-5, "power": 2.0}), ("constant", {}), ("constant_with_warmup", {}),
             ("inverse_sqrt", {}), ("inverse_sqrt", {"timescale": 12})]
    for kind, kw in cases:
        for warmup in (0, 5):
            lr = 1e-3
            values = [lr * lr_lambda(kind, s, warmup, 20, lr, **kw) for s in range(22)]
            schedules.append({"type": kind, "kwargs": kw, "learning_rate": lr, "warmup": warmup, "total": 20,
                              "values": values})

    doc = {
        "what": "transformers-rule training of models/gpt2-tiny; see src/test/python/trainer_reference/trainer_reference.py",
        "torch_version": torch.__version__,
        "hyperparameters": HP,
        "decayed_parameters": sorted(decay),
        "steps": [{"micro_batches": micro, **r} for micro, r in zip(steps, ref)],
        "sensitivity": sensitivity,
        "schedules": schedules,
        "warmup_steps_from_ratio": [{"warmup_ratio": r, "total": t, "warmup": math.ceil(t * r)}
                                    for r, t in [(0.03, 100), (0.1, 101), (0.05, 7), (0.0, 50)]],
    }
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")
    print("wrote", OUT)
    for r in ref:
        print("loss %.6f grad_norm %.4f lr %.6f" % (r["loss"], r["grad_norm"], r["learning_rate"]))
    print("sensitivity", sensitivity)


if __name__ == "__main__":
    main()
