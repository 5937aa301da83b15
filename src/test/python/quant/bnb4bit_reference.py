#!/usr/bin/env python3
"""Independent reference for jtune's 4-bit (bitsandbytes / QLoRA) quantization.

Written from the published algorithm, not from jtune's Java:
  * QLoRA (Dettmers et al. 2023, arXiv:2305.14314): NF4 code values (appendix E),
    block-wise absmax quantization with block size 64, double quantization of the
    absmax constants (8-bit floats, blocks of 256, the mean subtracted first).
  * bitsandbytes' layout and rounding rules (functional.py, csrc/kernels.cu):
      - a value is normalised by x * (1 / absmax_of_its_block) in float32;
      - NF4: the code is the number of decision boundaries the value is strictly above
        (boundaries = midpoints of neighbouring NF4 values, as float32); ties go down;
      - FP4: sign bit for x < 0, magnitude by bitsandbytes' seven boundaries (float32
        literals of the kernel), codes in e2m1 order 0b000 0, 0b001 0.0625, 0b110 2,
        0b111 3, 0b100 4, 0b101 6, 0b010 8, 0b011 12 (divided by 12);
      - two codes per byte, the first element in the high nibble; an odd count pads the
        last low nibble with the code of 0 * (1 / absmax);
      - double quantization: offset = mean(absmax) (here: the float64 mean rounded to
        float32; bitsandbytes takes a float32 device reduction), absmax - offset quantized
        with the signed 8-bit dynamic map in blocks of 256 by bitsandbytes' binary search
        (nearest by float32 midpoints);
      - dequantize: value = quant_map[code] * absmax (float32), then cast to the quant
        state's dtype (round to nearest even); with double quantization
        absmax = nested_quant_map[q] * nested_absmax[b // 256] + offset (float32).

Plain Python floats and numpy float32 scalars, one element at a time: nothing shared with the Java
side, which uses LibTorch tensor ops (torch, if installed, only reports how far torch's own
linspace would move the dynamic map).

Writes src/test/resources/quant/bnb4bit_reference.json.gz. Run from the repository root:
    /usr/bin/python3 src/test/python/quant/bnb4bit_reference.py
"""
import base64
import gzip
import json
import math
import os
import sys

import numpy as np

F32 = np.float32
BLOCK = 64
NESTED_BLOCK = 256

NF4 = [-1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453,
       -0.28444138169288635, -0.18477343022823334, -0.09105003625154495, 0.0,
       0.07958029955625534, 0.16093020141124725, 0.24611230194568634, 0.33791524171829224,
       0.44070982933044434, 0.5626170039176941, 0.7229568362236023, 1.0]
# float32 midpoints of neighbouring NF4 values (computed in double, as the kernel's literals are).
NF4_BOUNDS = [F32((NF4[k] + NF4[k + 1]) / 2.0) for k in range(15)]

FP4_RAW = [0.0, 0.0625, 8.0, 12.0, 4.0, 6.0, 2.0, 3.0, -0.0, -0.0625, -8.0, -12.0, -4.0, -6.0, -2.0, -3.0]
FP4 = [F32(v) / F32(12.0) for v in FP4_RAW]
FP4_BOUNDS = [F32(b) for b in (0.00260417, 0.0859375, 0.20833333, 0.29166667, 0.4166667, 0.583333, 0.8333333)]
FP4_BY_RANK = [0b000, 0b001, 0b110, 0b111, 0b100, 0b101, 0b010, 0b011]


def table(quant_type):
    return [F32(v) for v in (NF4 if quant_type == "nf4" else FP4)]


def code4(quant_type, x):
    """The 4-bit code of a normalised float32 value x (NaN gives 0, as every comparison is false)."""
    if quant_type == "nf4":
        return sum(1 for b in NF4_BOUNDS if x > b)
    sign = 0b1000 if x < 0 else 0
    a = abs(x)
    return sign | FP4_BY_RANK[sum(1 for b in FP4_BOUNDS if a > b)]


def linspace_f32(start, end, steps):
    """torch.linspace's scalar rule in float32: from the start for the first half, from the end after."""
    start, end = F32(start), F32(end)
    step = F32(end - start) / F32(steps - 1)
    return [F32(start + F32(step * F32(i))) if i < steps // 2 else F32(end - F32(step * F32(steps - i - 1)))
            for i in range(steps)]


def dynamic_map():
    """bitsandbytes' signed 8-bit dynamic map (create_dynamic_map, max_exponent_bits 7): for decade
    i = 0..6 the midpoints of linspace(0.1, 1, 2^i + 1) times +-10^(i-6) in float32, then 0 and 1; sorted.

    The linspace is pinned to torch's scalar float32 rule. torch's vectorised CPU kernel rounds a few
    entries differently, and differently across torch versions and CPUs (torch 1.13 here and LibTorch
    2.10 disagree in some entries by an ulp), so no single map is "bitsandbytes' map"; every file carries
    its own (nested_quant_map) and readers use that."""
    data = []
    for i in range(7):
        b = linspace_f32(0.1, 1.0, 2 ** i + 1)
        means = [F32(F32(b[k] + b[k + 1]) / F32(2.0)) for k in range(len(b) - 1)]
        scale = F32(10.0 ** (i - 6))
        data += [float(F32(scale * m)) for m in means]
        data += [float(F32(-scale * m)) for m in means]
    data += [0.0, 1.0]
    assert len(data) == 256
    return [F32(v) for v in sorted(data)]


def torch_recipe_map():
    """The same recipe run with this machine's torch (for information: how far the pinned rule is)."""
    import torch
    data = []
    for i in range(7):
        b = torch.linspace(0.1, 1.0, 2 ** i + 1, dtype=torch.float32)
        means = (b[:-1] + b[1:]) / 2.0
        data += ((10 ** (i - 6)) * means).tolist()
        data += (-(10 ** (i - 6)) * means).tolist()
    data += [0.0, 1.0]
    return sorted(data), torch.__version__


def quantize8(code, x):
    """bitsandbytes' dQuantize (no stochastic rounding): a binary search, then the nearer neighbour."""
    pivot, upper_pivot, lower_pivot = 127, 255, 0
    lower, upper = F32(-1.0), F32(1.0)
    val = code[pivot]
    i = 64
    while i > 0:
        if x > val:
            lower_pivot, lower, pivot = pivot, val, pivot + i
        else:
            upper_pivot, upper, pivot = pivot, val, pivot - i
        val = code[pivot]
        i >>= 1
    if upper_pivot == 255:
        upper = code[255]
    if lower_pivot == 0:
        lower = code[0]
    if x > val:
        mid = F32(F32(upper + val) * F32(0.5))
        return upper_pivot if x > mid else pivot
    mid = F32(F32(lower + val) * F32(0.5))
    return lower_pivot if x < mid else pivot


def block_absmax(values):
    m = F32(0.0)
    for v in values:
        m = max(m, F32(abs(v)))
    return m


def recip(m):
    with np.errstate(divide="ignore"):
        return F32(1.0) / m


def times(a, b):
    with np.errstate(invalid="ignore", over="ignore"):
        return F32(a * b)


def quantize4(values, quant_type, double_quant):
    n = len(values)
    blocks = (n + BLOCK - 1) // BLOCK
    absmax = []
    codes = []
    for b in range(blocks):
        chunk = values[b * BLOCK:(b + 1) * BLOCK]
        m = block_absmax(chunk)
        absmax.append(m)
        r = recip(m)
        for v in chunk:
            codes.append(code4(quant_type, times(v, r)))
        if b == blocks - 1 and n % 2 == 1:
            codes.append(code4(quant_type, times(F32(0.0), r)))  # the padding nibble
    packed = bytes((codes[2 * j] << 4) | codes[2 * j + 1] for j in range(len(codes) // 2))
    out = {"packed": packed, "absmax": absmax}
    if double_quant:
        offset = F32(math.fsum(float(a) for a in absmax) / len(absmax))
        centred = [F32(a - offset) for a in absmax]
        dmap = dynamic_map()
        nested_absmax, q = [], []
        for b in range(0, len(centred), NESTED_BLOCK):
            chunk = centred[b:b + NESTED_BLOCK]
            m = block_absmax(chunk)
            nested_absmax.append(m)
            r = recip(m)
            q += [quantize8(dmap, times(v, r)) for v in chunk]
        out.update(offset=offset, nested_absmax=nested_absmax, qabsmax=bytes(q))
    return out


def to_bf16(x):
    """float32 -> bfloat16 (round to nearest even), returned as the float32 it represents."""
    bits = int(np.array([x], dtype=np.float32).view(np.uint32)[0])
    if (bits & 0x7F800000) == 0x7F800000:
        return x
    bits = (bits + 0x7FFF + ((bits >> 16) & 1)) & 0xFFFF0000
    return F32(np.array([bits], dtype=np.uint32).view(np.float32)[0])


def cast(x, dtype):
    if dtype == "float32":
        return x
    if dtype == "float16":
        with np.errstate(over="ignore"):
            return F32(np.float16(x))
    return to_bf16(x)


def dequantize4(packed, n, quant_type, dtype, absmax=None, qabsmax=None, nested_absmax=None, offset=None):
    if qabsmax is not None:
        dmap = dynamic_map()
        absmax = [F32(F32(dmap[q] * nested_absmax[b // NESTED_BLOCK]) + offset) for b, q in enumerate(qabsmax)]
    t = table(quant_type)
    out = []
    for i in range(n):
        byte = packed[i // 2]
        c = byte >> 4 if i % 2 == 0 else byte & 0x0F
        out.append(cast(times(t[c], absmax[i // BLOCK]), dtype))
    return out


def f32_b64(values):
    return base64.b64encode(np.array(values, dtype="<f4").tobytes()).decode("ascii")


def inputs():
    rng = np.random.RandomState(15)
    cases = []

    def add(name, values, shape, dtype="float32", combos=None):
        values = [cast(F32(v), dtype) for v in values]
        cases.append((name, values, shape, dtype, combos))

    add("n1", [0.37], [1])
    add("n63", rng.standard_normal(63), [63])
    add("n65", rng.standard_normal(65) * 3.0, [65])
    add("n4097", rng.standard_normal(4097) * 0.02, [4097])
    add("m3x67", rng.standard_normal(201) * 0.5, [3, 67])
    zeros = list(rng.standard_normal(200))
    zeros[64:128] = [0.0] * 64
    add("zero_block", zeros, [200])
    add("all_zeros", [0.0] * 65, [65])
    extremes = [3.0e38, -3.0e38, 1e-38, -1e-38, 1.4e-45, 65504.0, -65504.0, 0.0, -0.0, 1.0, -1.0, 7.5, -1e-30]
    extremes += list(rng.standard_normal(51) * 1e30)  # first block: huge and tiny together
    extremes += [1.0e-40, -3.0e-41, 1.4e-45, 0.0] * 16  # second block: subnormals only (1/absmax overflows)
    # third block: absmax exactly 1, values exactly on the decision boundaries (ties go to the lower code)
    bounds = [float(b) for b in NF4_BOUNDS] + [float(b) for b in FP4_BOUNDS] + [-float(b) for b in FP4_BOUNDS]
    extremes += [1.0] + bounds + [-0.5] * (63 - len(bounds))
    add("extremes", extremes, [len(extremes)])
    add("bf16", rng.standard_normal(130) * 0.05, [2, 65], dtype="bfloat16")
    add("fp16", rng.standard_normal(129) * 2.0, [129], dtype="float16")
    # 266 blocks: two nested blocks of 256 (the second partial); absmax spread over decades
    big = rng.standard_normal(17000) * np.repeat(10.0 ** rng.uniform(-3, 1, 266), 64)[:17000]
    add("n17000", big, [17000], combos=[("nf4", True), ("fp4", True)])
    return cases


def main():
    root = os.path.dirname(os.path.abspath(__file__))
    out_path = os.path.normpath(os.path.join(root, "../../resources/quant/bnb4bit_reference.json.gz"))
    dmap = dynamic_map()
    doc = {
        "generator": "src/test/python/quant/bnb4bit_reference.py",
        "blocksize": BLOCK,
        "nested_blocksize": NESTED_BLOCK,
        "nf4": [float(v) for v in table("nf4")],
        "fp4": [float(v) for v in table("fp4")],
        "dynamic_map": [float(v) for v in dmap],
        "cases": [],
    }
    try:
        tmap, version = torch_recipe_map()
        doc["torch_recipe_map_entries_differing"] = sum(1 for x, y in zip(tmap, dmap) if x != float(y))
        doc["torch_version"] = version
    except ImportError:
        pass
    for name, values, shape, dtype, combos in inputs():
        for qt, dq in combos or [("nf4", False), ("nf4", True), ("fp4", False), ("fp4", True)]:
            q = quantize4(values, qt, dq)
            n = len(values)
            state = {"quant_type": qt, "blocksize": BLOCK, "dtype": dtype, "shape": shape}
            case = {"name": f"{name}_{qt}_{'dq' if dq else 'plain'}", "quant_type": qt, "double_quant": dq,
                    "dtype": dtype, "shape": shape, "input_f32": f32_b64(values),
                    "packed": base64.b64encode(q["packed"]).decode("ascii")}
            if dq:
                state.update(nested_blocksize=NESTED_BLOCK, nested_dtype="float32", nested_offset=float(q["offset"]))
                case.update(qabsmax=base64.b64encode(q["qabsmax"]).decode("ascii"),
                            nested_absmax=f32_b64(q["nested_absmax"]), nested_offset=float(q["offset"]))
                deq = dequantize4(q["packed"], n, qt, dtype, qabsmax=q["qabsmax"], nested_absmax=q["nested_absmax"],
                                  offset=q["offset"])
            else:
                case["absmax"] = f32_b64(q["absmax"])
                deq = dequantize4(q["packed"], n, qt, dtype, absmax=q["absmax"])
            case["quant_state"] = state
            case["dequantized_f32"] = f32_b64(deq)
            doc["cases"].append(case)
    # gzipped (mtime 0, so the same cases give the same bytes): the plain JSON is 645 KB of the repository's ~6 MB
    with open(out_path, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=9, mtime=0) as f:
        f.write((json.dumps(doc, indent=1) + "\n").encode("utf-8"))
    print(f"wrote {out_path}: {len(doc['cases'])} cases")


if __name__ == "__main__":
    sys.exit(main())
