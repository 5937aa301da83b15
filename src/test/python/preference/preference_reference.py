"""Independent reference for jtune's preference losses: a few full fine-tuning steps of the tiny GPT-2 fixture
(src/test/resources/models/gpt2-tiny, the same safetensors jtune loads) under each method, written in PyTorch from
TRL's source and sharing no code with jtune:

- DPOTrainer (dpo_loss): logits = (pi_c - pi_r) - (ref_c - ref_r);
  sigmoid: -(1-ls) logsigmoid(beta logits) - ls logsigmoid(-beta logits); ipo: (logits - 1/(2 beta))^2 with the
  log-probs averaged over the completion's tokens (concatenated_forward divides by loss_mask.sum for ipo);
  rewards beta (pi - ref).
- CPOTrainer with loss_type="simpo" (cpo_loss): log-probs averaged; logits = pi_c - pi_r - simpo_gamma / beta;
  -(1-ls) logsigmoid(beta logits) - ls logsigmoid(-beta logits); loss = mean + cpo_alpha * NLL(chosen); rewards beta pi.
- ORPOTrainer (odds_ratio_loss): log-probs averaged; log_odds = (c - r) - (log1p(-exp c) - log1p(-exp r));
  loss = NLL(chosen) - beta * mean(logsigmoid(log_odds)); rewards beta pi; log_odds_ratio, log_odds_chosen.
- KTOTrainer (kto_loss): KL = mean(pi_KL - ref_KL).clamp(min=0) over the batch's KL rows (prompt i with the
  completion of the row before it in the batch, as _get_kl_dataset rotates them; computed without gradients);
  desirable: 1 - sigmoid(beta (pi - ref - KL)), undesirable: 1 - sigmoid(beta (KL - (pi - ref))), weighted by
  desirable_weight / undesirable_weight, mean over the batch; rewards/chosen = mean of beta (pi - ref) over the
  desirable rows, rewards/margins = rewards/chosen - rewards/rejected.

A completion's log-probability is the sum over its tokens of log_softmax(logits)[token] (get_batch_logps); the
prompt's tokens are masked. NLL(chosen) is the token cross-entropy over the chosen completions of the batch.
The reference model is a frozen copy of the initial weights (create_reference_model); dropout is off (TRL's
disable_dropout=True). torch.optim.AdamW (weight_decay 0), constant learning rate, no clipping.

Run:  /usr/bin/python3 src/test/python/preference/preference_reference.py [OUT.json]
Writes src/test/resources/preference/reference_run.json by default (committed; PreferenceReferenceTest also runs
this script when /usr/bin/python3 has torch, and compares both with jtune step by step).
"""

import copy
import json
import math
import os
import sys

import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", "..", "..", ".."))
sys.path.insert(0, os.path.join(HERE, "..", "trainer_reference"))
from trainer_reference import Gpt2LMHead, load_safetensors  # noqa: E402  (the fixture's GPT-2 forward)

MODEL_DIR = os.path.join(ROOT, "src", "test", "resources", "models", "gpt2-tiny")
OUT = os.path.join(ROOT, "src", "test", "resources", "preference", "reference_run.json")
IGNORE = -100
LR = 1e-2
STEPS = 3
PAIRS_PER_STEP = 2

torch.set_num_threads(1)

CASES = [
    dict(name="dpo_sigmoid", method="dpo", beta=0.1, loss_type="sigmoid", label_smoothing=0.0),
    dict(name="dpo_ipo", method="dpo", beta=0.1, loss_type="ipo", label_smoothing=0.0),
    dict(name="orpo", method="orpo", beta=0.1),
    dict(name="simpo", method="simpo", beta=2.0, simpo_gamma=0.5, cpo_alpha=0.5, label_smoothing=0.0),
    dict(name="kto", method="kto", beta=0.1, desirable_weight=1.0, undesirable_weight=1.33),
]


def lcg(seed):
    state = [seed]

    def nxt(n):
        state[0] = (state[0] * 1103515245 + 12345) % (1 << 31)
        return state[0] % n
    return nxt


def make_items(vocab, eos):
    """Deterministic token ids: per step, PAIRS_PER_STEP prompts with a chosen and a rejected completion (+ EOS)."""
    rnd = lcg(2024)
    items = []
    for _ in range(STEPS * PAIRS_PER_STEP):
        prompt = [rnd(vocab - 1) for _ in range(3 + rnd(4))]
        chosen = [rnd(vocab - 1) for _ in range(2 + rnd(5))] + [eos]
        rejected = [rnd(vocab - 1) for _ in range(2 + rnd(5))] + [eos]
        items.append(dict(prompt=prompt, chosen=chosen, rejected=rejected))
    return items


def kto_items(items):
    """KTO: each pair's chosen as a desirable and its rejected as an undesirable example, 2 pairs -> 4 examples a step;
    the KL completion of example i is the completion of example i-1 within its step's batch (the first takes the last)."""
    out = []
    for s in range(STEPS):
        batch = []
        for it in items[s * PAIRS_PER_STEP:(s + 1) * PAIRS_PER_STEP]:
            batch.append(dict(prompt=it["prompt"], completion=it["chosen"], label=True))
            batch.append(dict(prompt=it["prompt"], completion=it["rejected"], label=False))
        for i, ex in enumerate(batch):
            ex["kl_completion"] = batch[i - 1]["completion"]
        out.extend(batch)
    return out


def sequence(prompt, completion):
    ids = prompt + completion
    labels = [IGNORE] * len(prompt) + completion
    return ids, labels


def batch_logps(model, seqs, pad):
    """Right-padded batch -> (sum of completion token log-probs, completion token counts) per row."""
    t = max(len(ids) for ids, _ in seqs)
    ids = torch.tensor([s[0] + [pad] * (t - len(s[0])) for s in seqs])
    labels = torch.tensor([s[1] + [IGNORE] * (t - len(s[1])) for s in seqs])
    logits = model(ids)[:, :-1, :].float()
    labels = labels[:, 1:]
    mask = labels != IGNORE
    safe = torch.where(mask, labels, torch.zeros_like(labels))
    per_token = torch.gather(logits.log_softmax(-1), 2, safe.unsqueeze(2)).squeeze(2)
    return (per_token * mask).sum(-1), mask.sum(-1).float(), per_token, mask


def nll_chosen(per_token, mask, n):
    return -(per_token[:n] * mask[:n]).sum() / mask[:n].sum()


def step_pairs(case, model, ref, pairs, pad):
    n = len(pairs)
    seqs = [sequence(p["prompt"], p["chosen"]) for p in pairs] + [sequence(p["prompt"], p["rejected"]) for p in pairs]
    logps, counts, per_token, mask = batch_logps(model, seqs, pad)
    with torch.no_grad():
        ref_logps = batch_logps(ref, seqs, pad)[0]
    method, beta = case["method"], case["beta"]
    average = method in ("orpo", "simpo") or case.get("loss_type") == "ipo"
    if average:
        logps = logps / counts
        ref_logps = ref_logps / counts
    c, r = logps[:n], logps[n:]
    m = {}
    if method == "dpo":
        rc, rr = ref_logps[:n], ref_logps[n:]
        logits = (c - r) - (rc - rr)
        if case["loss_type"] == "sigmoid":
            ls = case["label_smoothing"]
            losses = -F.logsigmoid(beta * logits) * (1 - ls) - F.logsigmoid(-beta * logits) * ls
        else:
            losses = (logits - 1 / (2 * beta)) ** 2
        loss = losses.mean()
        chosen_rewards, rejected_rewards = beta * (c - rc).detach(), beta * (r - rr).detach()
    elif method == "simpo":
        ls = case["label_smoothing"]
        logits = (c - r) - case["simpo_gamma"] / beta
        losses = -F.logsigmoid(beta * logits) * (1 - ls) - F.logsigmoid(-beta * logits) * ls
        nll = nll_chosen(per_token, mask, n)
        loss = losses.mean() + case["cpo_alpha"] * nll
        chosen_rewards, rejected_rewards = beta * c.detach(), beta * r.detach()
        m["nll_loss"] = nll.item()
    else:  # orpo
        log_odds = (c - r) - (torch.log1p(-torch.exp(c)) - torch.log1p(-torch.exp(r)))
        ratio = F.logsigmoid(log_odds)
        nll = nll_chosen(per_token, mask, n)
        loss = nll - (beta * ratio).mean()
        chosen_rewards, rejected_rewards = beta * c.detach(), beta * r.detach()
        m["nll_loss"] = nll.item()
        m["log_odds_ratio"] = ratio.mean().item()
        m["log_odds_chosen"] = log_odds.mean().item()
    m["rewards/chosen"] = chosen_rewards.mean().item()
    m["rewards/rejected"] = rejected_rewards.mean().item()
    m["rewards/accuracies"] = (chosen_rewards > rejected_rewards).float().mean().item()
    m["rewards/margins"] = (chosen_rewards - rejected_rewards).mean().item()
    m["logps/chosen"] = c.detach().mean().item()
    m["logps/rejected"] = r.detach().mean().item()
    return loss, m


def step_kto(case, model, ref, batch, pad):
    beta = case["beta"]
    seqs = [sequence(e["prompt"], e["completion"]) for e in batch]
    kl_seqs = [sequence(e["prompt"], e["kl_completion"]) for e in batch]
    logps = batch_logps(model, seqs, pad)[0]
    with torch.no_grad():
        kl_policy = batch_logps(model, kl_seqs, pad)[0]
        ref_logps = batch_logps(ref, seqs, pad)[0]
        kl_ref = batch_logps(ref, kl_seqs, pad)[0]
    kl = (kl_policy - kl_ref).mean().clamp(min=0)
    desirable = torch.tensor([e["label"] for e in batch])
    logratios = logps - ref_logps
    chosen_losses = 1 - torch.sigmoid(beta * (logratios[desirable] - kl))
    rejected_losses = 1 - torch.sigmoid(beta * (kl - logratios[~desirable]))
    losses = torch.cat((case["desirable_weight"] * chosen_losses, case["undesirable_weight"] * rejected_losses), 0)
    loss = losses.nanmean() if hasattr(losses, "nanmean") else losses.mean()
    rewards = beta * logratios.detach()
    m = {
        "rewards/chosen": rewards[desirable].mean().item(),
        "rewards/rejected": rewards[~desirable].mean().item(),
        "logps/chosen": logps.detach()[desirable].mean().item(),
        "logps/rejected": logps.detach()[~desirable].mean().item(),
        "kl": kl.item(),
    }
    m["rewards/margins"] = m["rewards/chosen"] - m["rewards/rejected"]
    return loss, m


def run(case, sd, cfg, items, kto, pad):
    torch.manual_seed(0)
    model = Gpt2LMHead(sd, cfg)
    ref = copy.deepcopy(model)
    for p in ref.parameters():
        p.requires_grad_(False)
    opt = torch.optim.AdamW(model.parameters(), lr=LR, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)
    steps = []
    for s in range(STEPS):
        opt.zero_grad()
        if case["method"] == "kto":
            per = len(kto) // STEPS
            loss, m = step_kto(case, model, ref, kto[s * per:(s + 1) * per], pad)
        else:
            loss, m = step_pairs(case, model, ref, items[s * PAIRS_PER_STEP:(s + 1) * PAIRS_PER_STEP], pad)
        loss.backward()
        opt.step()
        steps.append(dict(loss=loss.item(), metrics=m))
    return steps


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else OUT
    with open(os.path.join(MODEL_DIR, "config.json")) as f:
        cfg = json.load(f)
    sd = load_safetensors(os.path.join(MODEL_DIR, "model.safetensors"))
    eos = cfg["eos_token_id"]
    pad = 0
    items = make_items(cfg["vocab_size"], eos)
    kto = kto_items(items)
    result = dict(model="src/test/resources/models/gpt2-tiny", learning_rate=LR, steps=STEPS, pad_id=pad,
                  pairs=items, kto_examples=kto, cases=[])
    for case in CASES:
        steps = run(case, sd, cfg, items, kto, pad)
        result["cases"].append(dict(settings=case, steps=steps))
        print("%-12s losses %s" % (case["name"], ", ".join("%.6f" % s["loss"] for s in steps)))
    dpo0 = result["cases"][0]["steps"][0]["loss"]
    assert abs(dpo0 - math.log(2)) < 1e-6, dpo0   # the policy equals its reference at the first step
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with open(out, "w") as f:
        json.dump(result, f, indent=1)
    print("wrote", out)


if __name__ == "__main__":
    main()
