"""Checks trainer_reference.py's transcriptions against transformers itself (run where transformers is installed;
the GPU machine has it, CI does not need it).

1. get_decay_parameter_names of a real Trainer on GPT2LMHeadModel(gpt2-tiny) equals the committed decay set;
2. get_scheduler(...) for every committed schedule case gives the committed values at every step;
3. a real transformers Trainer run (CPU, dropout off, the committed batches in order, same hyperparameters)
   logs the committed losses (transformers rounds them to 4 digits), grad norms and learning rates.

Writes a JSON summary to the path given as the first argument (default: stdout) and exits 1 on a mismatch.
"""

import json
import os
import sys
import tempfile

import torch
import transformers
from transformers import GPT2LMHeadModel, Trainer, TrainingArguments, get_scheduler

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", "..", "..", ".."))
MODEL_DIR = os.path.join(ROOT, "src", "test", "resources", "models", "gpt2-tiny")
REF = os.path.join(ROOT, "src", "test", "resources", "trainer_reference", "reference_run.json")


class Rows(torch.utils.data.Dataset):
    def __init__(self, rows):
        self.rows = rows

    def __len__(self):
        return len(self.rows)

    def __getitem__(self, i):
        return self.rows[i]


def collate(items):
    return {"input_ids": torch.stack([x["input_ids"] for x in items]), "labels": torch.stack([x["labels"] for x in items])}


class InOrder(Trainer):
    def _get_train_sampler(self, *args, **kwargs):
        return torch.utils.data.SequentialSampler(self.train_dataset)


def close(a, b, rtol, atol=0.0):
    return abs(a - b) <= atol + rtol * abs(b)


def main():
    ref = json.load(open(REF))
    hp = ref["hyperparameters"]
    report = {"transformers_version": transformers.__version__, "torch_version": torch.__version__, "problems": []}
    torch.manual_seed(0)
    model = GPT2LMHeadModel.from_pretrained(MODEL_DIR, attn_pdrop=0.0, embd_pdrop=0.0, resid_pdrop=0.0,
                                            torch_dtype=torch.float32)
    rows = []
    for step in ref["steps"]:
        for micro in step["micro_batches"]:
            for ids, labels in zip(micro["input_ids"], micro["labels"]):
                rows.append({"input_ids": torch.tensor(ids), "labels": torch.tensor(labels)})
    with tempfile.TemporaryDirectory() as tmp:
        args = TrainingArguments(output_dir=tmp, per_device_train_batch_size=hp["rows"],
                                 gradient_accumulation_steps=hp["gradient_accumulation_steps"], max_steps=hp["max_steps"],
                                 learning_rate=hp["learning_rate"], weight_decay=hp["weight_decay"],
                                 adam_beta1=hp["adam_beta1"], adam_beta2=hp["adam_beta2"], adam_epsilon=hp["adam_epsilon"],
                                 max_grad_norm=hp["max_grad_norm"], warmup_steps=hp["warmup_steps"],
                                 lr_scheduler_type=hp["lr_scheduler_type"], logging_steps=1, save_strategy="no",
                                 report_to=[], use_cpu=True, seed=0, optim="adamw_torch", disable_tqdm=True,
                                 remove_unused_columns=False)
        trainer = InOrder(model=model, args=args, train_dataset=Rows(rows), data_collator=collate)
        names = set(trainer.get_decay_parameter_names(model))
        decay = sorted(n for n, p in model.named_parameters() if n in names and p.requires_grad)
        report["decay_set_equal"] = decay == ref["decayed_parameters"]
        if not report["decay_set_equal"]:
            report["problems"].append({"decay": decay})
        trainer.train()
        logged = [h for h in trainer.state.log_history if "loss" in h and "grad_norm" in h]
    report["steps"] = []
    for want, got in zip(ref["steps"], logged):
        row = {"step": got["step"], "loss": got["loss"], "ref_loss": want["loss"], "grad_norm": got["grad_norm"],
               "ref_grad_norm": want["grad_norm"], "learning_rate": got["learning_rate"], "ref_learning_rate": want["learning_rate"]}
        ok = (close(got["loss"], want["loss"], 1e-4, 5.1e-5) and close(got["grad_norm"], want["grad_norm"], 1e-4)
              and close(got["learning_rate"], want["learning_rate"], 1e-9, 1e-15))
        row["ok"] = ok
        report["steps"].append(row)
        if not ok:
            report["problems"].append(row)
    if len(logged) != len(ref["steps"]):
        report["problems"].append({"logged_steps": len(logged)})

    report["schedules_checked"] = 0
    for case in ref["schedules"]:
        p = torch.nn.Parameter(torch.zeros(1))
        opt = torch.optim.SGD([p], lr=case["learning_rate"])
        sched = get_scheduler(case["type"], opt, num_warmup_steps=case["warmup"], num_training_steps=case["total"],
                              scheduler_specific_kwargs=dict(case["kwargs"]))
        values = []
        for _ in case["values"]:
            values.append(sched.get_last_lr()[0])
            opt.step()
            sched.step()
        bad = [(i, a, b) for i, (a, b) in enumerate(zip(values, case["values"])) if not close(a, b, 1e-12, 1e-18)]
        report["schedules_checked"] += 1
        if bad:
            report["problems"].append({"schedule": case["type"], "kwargs": case["kwargs"], "warmup": case["warmup"], "bad": bad[:5]})
    text = json.dumps(report, indent=1)
    if len(sys.argv) > 1:
        with open(sys.argv[1], "w") as f:
            f.write(text + "\n")
    print(text)
    sys.exit(1 if report["problems"] else 0)


if __name__ == "__main__":
    main()
