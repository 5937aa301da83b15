#!/usr/bin/env python3
"""GPU checks for the 4-bit work (issue 15), for the lent GPU machine (Python + torch there, no Java).

Prepare here (nvcc builds the kernel library in the normal build):
    mvn -B -ntp -q compile
    ./jtune quantize --model src/test/resources/models/llama-tiny --out target/quant-check/q-nf4 --double-quant
    ./jtune quantize --model src/test/resources/models/llama-tiny --out target/quant-check/q-fp4 --quant-type fp4
Run there from the repository root, carrying target/classes/dev/jtune/kernels/linux-x86_64/libjtunekernels.so
and target/quant-check:
    mkdir -p $OUT && PYTHONUNBUFFERED=1 python3 src/test/python/quant/gpu_check.py 2>&1 | tee $OUT/log.txt

What it checks:
 1. kernels/dequantize_4bit.cu through the C ABI (ctypes) against the independent reference's values
    (src/test/resources/quant/bnb4bit_reference.json.gz): NaN-poisoned outputs with guard elements past n, odd
    sizes, f32 and bf16 (fp16 cases: f32 output rounded to fp16); a null pointer comes back as a status with a
    message; a 4096 x 14336 + 3 weight against a torch composition, exact, with timings and GB/s.
 2. If bitsandbytes is installed: bitsandbytes dequantizes jtune's files (QuantState.from_dict) to the
    same values, its own quantizer's bytes vs jtune's, transformers loads jtune's directories, and a
    transformers-saved 4-bit llama-tiny goes to $OUT/hfq for jtune to read back (QuantizedCheckpoint).
"""
import base64, ctypes, gzip, json, os, sys, time
import numpy as np
import torch

OUT = os.environ.get("OUT", "/tmp/out")
res = {"torch": torch.__version__, "device": torch.cuda.get_device_name(0)}
try:
    import transformers
    res["transformers"] = transformers.__version__
except Exception as e:
    res["transformers"] = repr(e)
try:
    import bitsandbytes as bnb
    res["bitsandbytes"] = bnb.__version__
except Exception as e:
    bnb = None
    res["bitsandbytes"] = repr(e)
print(res, flush=True)

lib = ctypes.CDLL(os.path.abspath(os.environ.get("JTK_LIB", "target/classes/dev/jtune/kernels/linux-x86_64/libjtunekernels.so")))
f = lib.jtk_dequantize_4bit
f.restype = ctypes.c_int
f.argtypes = [ctypes.c_void_p] * 6 + [ctypes.c_float, ctypes.c_int64, ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64,
                                      ctypes.c_int, ctypes.c_void_p]
lib.jtk_last_error.restype = ctypes.c_char_p
lib.jtk_set_device(0)


def b64f(s): return torch.from_numpy(np.frombuffer(base64.b64decode(s), dtype="<f4").copy())
def b64u(s): return torch.from_numpy(np.frombuffer(base64.b64decode(s), dtype=np.uint8).copy())
def p(t): return 0 if t is None else t.data_ptr()


def kernel(n, packed, quant_map, absmax=None, qabsmax=None, nested_absmax=None, nested_map=None, offset=0.0,
           dtype=torch.float32, guard=5):
    out = torch.full((n + guard,), float("nan"), dtype=dtype, device="cuda")
    st = f(p(out), p(packed), p(absmax), p(qabsmax), p(nested_absmax), p(nested_map), offset, 256, p(quant_map), n, 64,
           0 if dtype == torch.float32 else 1, torch.cuda.current_stream().cuda_stream)
    assert st == 0, lib.jtk_last_error()
    torch.cuda.synchronize()
    assert torch.isnan(out[n:].float()).all(), "kernel wrote past n"
    return out[:n]


doc = json.load(gzip.open("src/test/resources/quant/bnb4bit_reference.json.gz", "rt"))
fails, checked = [], 0
for c in doc["cases"]:
    n = int(np.prod(c["shape"]))
    packed = b64u(c["packed"]).cuda()
    qmap = torch.tensor(doc[c["quant_type"]], dtype=torch.float32, device="cuda")
    kw = {}
    if c["double_quant"]:
        kw = dict(qabsmax=b64u(c["qabsmax"]).cuda(), nested_absmax=b64f(c["nested_absmax"]).cuda(),
                  nested_map=torch.tensor(doc["dynamic_map"], dtype=torch.float32, device="cuda"), offset=c["nested_offset"])
    else:
        kw = dict(absmax=b64f(c["absmax"]).cuda())
    expected = b64f(c["dequantized_f32"])
    dt = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float32}[c["dtype"]]
    got = kernel(n, packed, qmap, dtype=dt, **kw).cpu()
    if c["dtype"] == "float16":
        got = got.to(torch.float16)
    got = got.float()
    checked += 1
    if not torch.equal(got, expected):
        bad = (got != expected).nonzero()[:3].flatten().tolist()
        fails.append((c["name"], bad, [got[i].item() for i in bad], [expected[i].item() for i in bad]))
res["reference_cases"] = {"checked": checked, "failed": fails}
print("reference cases:", checked, "failed:", fails, flush=True)

# invalid arguments come back as a status with a message
st = f(0, 0, 0, 0, 0, 0, 0.0, 256, 0, 10, 64, 0, 0)
res["null_pointer_status"] = [st, lib.jtk_last_error().decode()]

# large odd-sized weight: kernel vs torch composition, exact in f32; bf16 rounds the same float once
torch.manual_seed(0)
n = 4096 * 14336 + 3
packed = torch.randint(0, 256, ((n + 1) // 2,), dtype=torch.uint8, device="cuda")
blocks = (n + 63) // 64
absmax = torch.rand(blocks, device="cuda") * 0.1
qabsmax = torch.randint(0, 256, (blocks,), dtype=torch.uint8, device="cuda")
nested_absmax = torch.rand((blocks + 255) // 256, device="cuda")
nested_map = torch.tensor(doc["dynamic_map"], dtype=torch.float32, device="cuda")
qmap = torch.tensor(doc["nf4"], dtype=torch.float32, device="cuda")


def composition(dq, dtype):
    codes = torch.stack([packed >> 4, packed & 15], 1).view(-1)[:n].long()
    am = (nested_map[qabsmax.long()] * nested_absmax.repeat_interleave(256)[:blocks] + 0.01) if dq else absmax
    return (qmap[codes] * am.repeat_interleave(64)[:n]).to(dtype)


timings = {}
for dq in (False, True):
    for dt in (torch.float32, torch.bfloat16):
        kw = dict(qabsmax=qabsmax, nested_absmax=nested_absmax, nested_map=nested_map, offset=0.01) if dq else dict(absmax=absmax)
        got = kernel(n, packed, qmap, dtype=dt, **kw)
        ref = composition(dq, dt)
        key = f"{'dq' if dq else 'plain'}_{str(dt).split('.')[-1]}"
        res["large_" + key + "_equal"] = bool(torch.equal(got, ref))
        for name, fn in (("kernel", lambda: kernel(n, packed, qmap, dtype=dt, guard=0, **kw)), ("torch", lambda: composition(dq, dt))):
            fn(); torch.cuda.synchronize()
            t0 = time.perf_counter()
            for _ in range(20):
                fn()
            torch.cuda.synchronize()
            ms = (time.perf_counter() - t0) / 20 * 1e3
            bytes_moved = (n + 1) // 2 + n * (4 if dt == torch.float32 else 2)
            timings[f"{key}_{name}_ms"] = round(ms, 4)
            timings[f"{key}_{name}_GBps"] = round(bytes_moved / ms / 1e6, 1)
res["timings_4096x14336"] = timings
print(json.dumps(res, indent=1), flush=True)

if bnb is not None:
    import bitsandbytes.functional as F
    from safetensors.torch import load_file, save_file
    compat = {}
    for d in ("target/quant-check/q-nf4", "target/quant-check/q-fp4"):
        sd = load_file(d + "/model.safetensors")
        orig = load_file("src/test/resources/models/llama-tiny/model.safetensors")
        for k in [k for k in sd if k.endswith(".quant_state.bitsandbytes__nf4") or k.endswith(".quant_state.bitsandbytes__fp4")]:
            w = k.split(".quant_state.")[0]
            parts = {kk: v.cuda() for kk, v in sd.items() if kk.startswith(w + ".")}
            qs = F.QuantState.from_dict({kk[len(w) + 1:]: v for kk, v in parts.items()}, device=torch.device("cuda"))
            deq = F.dequantize_4bit(sd[w].cuda(), qs)
            mine = None
            # bitsandbytes' own quantization of the original weight, same settings
            q2, qs2 = F.quantize_4bit(orig[w].cuda(), blocksize=64, compress_statistics=qs.nested, quant_type=qs.quant_type)
            compat.setdefault(d, []).append({
                "weight": w, "bnb_dequant_max_abs_diff_vs_orig": (deq.float().cpu() - orig[w]).abs().max().item(),
                "packed_equal_bnb_quantizer": bool(torch.equal(q2.cpu().view(-1), sd[w].view(-1))),
                "absmax_equal": bool(torch.equal((qs2.absmax.cpu()), sd[w + ".absmax"])),
                "bnb_deq_equal_bnb_of_jtune_bytes": bool(torch.equal(F.dequantize_4bit(q2, qs2).cpu(), deq.cpu())),
            })
            save_file({"w": deq.float().cpu().contiguous()}, f"{OUT}/bnbdeq_{d.split('-')[-1]}_{w}.safetensors") if w.endswith("layers.0.mlp.down_proj.weight") else None
        try:
            from transformers import AutoModelForCausalLM
            m = AutoModelForCausalLM.from_pretrained(d, device_map="cuda")
            ids = torch.tensor([[1, 5, 9, 17, 33, 65]], device="cuda")
            compat[d + "_transformers_logits_finite"] = bool(torch.isfinite(m(ids).logits).all())
            compat[d + "_modules"] = sorted({type(mod).__name__ for mod in m.modules()})
        except Exception as e:
            compat[d + "_transformers_error"] = repr(e)[:500]
    res["bnb"] = compat
    try:  # transformers + bitsandbytes writing a 4-bit checkpoint for jtune to read back here
        from transformers import AutoModelForCausalLM, BitsAndBytesConfig
        cfg = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                                 bnb_4bit_compute_dtype=torch.bfloat16)
        m = AutoModelForCausalLM.from_pretrained("src/test/resources/models/llama-tiny", quantization_config=cfg, device_map="cuda")
        m.save_pretrained(f"{OUT}/hfq")
        res["hf_saved"] = sorted(os.listdir(f"{OUT}/hfq"))
    except Exception as e:
        res["hf_save_error"] = repr(e)[:500]
    print(json.dumps(res.get("bnb"), indent=1)[:6000])
json.dump(res, open(f"{OUT}/results.json", "w"), indent=1)
print("hf_saved", res.get("hf_saved"), res.get("hf_save_error"))
