"""Reference values for jtune's regularisers (issue 17), computed with PyTorch itself.

Writes src/test/resources/regularisation/reference.json, which RegularisationReferenceTest compares with jtune:

* label smoothing: for fixed hidden states h (N, D), output weight W (V, D) and targets (some -100), the summed
  loss torch.nn.functional.cross_entropy(h @ W.T, t, label_smoothing=eps, reduction="sum") and its gradients with
  respect to h and W; and, independently, a transcription of transformers' LabelSmoother
  (transformers/trainer_pt_utils.py) on the same logits, which must equal the sum divided by the target count.
* NEFTune: the noise magnitude transformers' neftune_post_forward_hook computes (alpha / sqrt(L * d) with the square
  root of an integer tensor: float32), and the noise that hook draws, zeros_like(output).uniform_(-m, m) after
  torch.manual_seed(seed), for a (B, L, d) float32 output.

Run with /usr/bin/python3 (torch >= 1.13; no transformers needed):
    /usr/bin/python3 src/test/python/regularisation/regularisation_reference.py
"""
import json
import os

import torch
import torch.nn.functional as F

OUT = os.path.join(os.path.dirname(__file__), "..", "..", "resources", "regularisation", "reference.json")


def label_smoother(logits, labels, epsilon, ignore_index=-100):
    """transformers' LabelSmoother.__call__ (shift_labels=False), transcribed."""
    log_probs = -F.log_softmax(logits, dim=-1)
    if labels.dim() == log_probs.dim() - 1:
        labels = labels.unsqueeze(-1)
    padding_mask = labels.eq(ignore_index)
    labels = torch.clamp(labels, min=0)
    nll_loss = log_probs.gather(dim=-1, index=labels)
    smoothed_loss = log_probs.sum(dim=-1, keepdim=True, dtype=torch.float32)
    nll_loss.masked_fill_(padding_mask, 0.0)
    smoothed_loss.masked_fill_(padding_mask, 0.0)
    num_active_elements = padding_mask.numel() - padding_mask.long().sum()
    nll_loss = nll_loss.sum() / num_active_elements
    smoothed_loss = smoothed_loss.sum() / (num_active_elements * log_probs.shape[-1])
    return (1 - epsilon) * nll_loss + epsilon * smoothed_loss


def neftune_magnitude(alpha, length, dim):
    """neftune_post_forward_hook's mag_norm: dims = torch.tensor(L * d); alpha / torch.sqrt(dims)."""
    dims = torch.tensor(length * dim)
    return alpha / torch.sqrt(dims)


def smoothing_cases():
    g = torch.Generator().manual_seed(17)
    n, d, v = 10, 6, 37
    hidden = torch.randn(n, d, generator=g) * 1.5
    weight = torch.randn(v, d, generator=g)
    targets = torch.randint(0, v, (n,), generator=g)
    targets[[1, 4, 8]] = -100
    cases = []
    for eps in (0.0, 0.1, 0.3):
        h = hidden.clone().requires_grad_(True)
        w = weight.clone().requires_grad_(True)
        loss = F.cross_entropy(h @ w.T, targets, label_smoothing=eps, reduction="sum")
        loss.backward()
        with torch.no_grad():
            smoother = label_smoother(hidden @ weight.T, targets, eps).item()
        valid = int((targets != -100).sum())
        assert abs(smoother - loss.item() / valid) <= 1e-5 * abs(smoother), (smoother, loss.item() / valid)
        cases.append({"epsilon": eps, "loss_sum": loss.item(), "label_smoother_mean": smoother, "targets_counted": valid,
                      "grad_hidden": h.grad.flatten().tolist(), "grad_weight": w.grad.flatten().tolist()})
    # the smoothing must matter: each eps moves the loss well beyond the test's tolerance
    assert abs(cases[1]["loss_sum"] - cases[0]["loss_sum"]) > 1e-2 * abs(cases[0]["loss_sum"])
    return {"n": n, "d": d, "v": v, "hidden": hidden.flatten().tolist(), "weight": weight.flatten().tolist(),
            "targets": targets.tolist(), "cases": cases}


def neftune_cases():
    mags = []
    for length, dim, alpha in ((48, 64, 5.0), (7, 32, 15.0), (513, 896, 5.0), (3, 3, 0.1), (1024, 4096, 10.0)):
        m = neftune_magnitude(alpha, length, dim)
        assert m.dtype == torch.float32
        mags.append({"length": length, "dim": dim, "alpha": alpha, "magnitude": m.item()})
    seed, shape, alpha = 1234, [2, 5, 32], 5.0   # (B, T, D) of the embeddings of src/test/resources/models/llama-tiny
    m = neftune_magnitude(alpha, shape[1], shape[2])
    torch.manual_seed(seed)
    output = torch.zeros(shape)   # the hook's output tensor; its values do not change the noise
    noise = torch.zeros_like(output).uniform_(-m, m)
    return {"magnitudes": mags, "draw": {"seed": seed, "shape": shape, "alpha": alpha, "magnitude": m.item(),
                                         "noise": noise.flatten().tolist()}}


def main():
    ref = {"torch": torch.__version__, "label_smoothing": smoothing_cases(), "neftune": neftune_cases()}
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w") as f:
        json.dump(ref, f, indent=1)
        f.write("\n")
    print("wrote", os.path.normpath(OUT))


if __name__ == "__main__":
    main()
