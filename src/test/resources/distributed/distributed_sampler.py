"""Reference shards of PyTorch's DistributedSampler (drop_last=False, shuffle=False: the sampler's own
padding and stride over a fixed order; jtune shuffles before, with its own seeded order).
Run: /usr/bin/python3 distributed_sampler.py > distributed_sampler.json (torch 1.13 here)."""
import json
from torch.utils.data import DistributedSampler

cases = []
for n, w in [(10, 3), (7, 4), (2, 3), (1, 3), (12, 4), (9, 2)]:
    shards = [list(DistributedSampler(range(n), num_replicas=w, rank=r, shuffle=False)) for r in range(w)]
    cases.append({"rows": n, "world_size": w, "shards": shards})
print(json.dumps(cases))
