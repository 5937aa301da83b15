#!/usr/bin/env python3
"""An independent transcription of ggml's reference quantizers (ggml-quants.c: quantize_row_{q8_0,q4_0,q5_0,q4_K,q6_K}_ref
and dequantize_row_*), in numpy float32 scalar arithmetic (every operation rounded to float32 as C does), written
from the C source separately from jtune's Java. Writes ggml_quants_vectors.json: inputs, the quantized bytes (hex)
and their dequantization, which QuantizerReferenceTest checks jtune against byte for byte.

Run: /usr/bin/python3 src/test/resources/gguf/ggml_quants_reference.py   (numpy only; deterministic)
"""
import json
import os
import struct

import numpy as np

F = np.float32
QK_K = 256


def fp16(x):
    """GGML_FP32_TO_FP16: round to nearest even (numpy's float16 cast does that)."""
    return np.array([x], dtype=np.float32).astype(np.float16)


def fp16_bytes(x):
    return fp16(x).tobytes()


def fp16_val(x):
    return F(fp16(x)[0])


def nearest_int(f):
    val = F(f) + F(12582912.0)
    i = int(np.array([val], dtype=np.float32).view(np.int32)[0])
    return (i & 0x007FFFFF) - 0x00400000


def c_roundf(v):
    v = F(v)
    a = abs(v)
    r = F(np.floor(a))
    if a - r >= F(0.5):
        r = r + F(1)
    return int(r) if v >= 0 else -int(r)


def q8_0(x):
    out = bytearray()
    for b in range(0, len(x), 32):
        blk = x[b:b + 32]
        amax = F(0)
        for v in blk:
            amax = max(amax, abs(v))
        d = amax / F(127)
        idd = F(1) / d if d != 0 else F(0)
        out += fp16_bytes(d)
        for v in blk:
            out += struct.pack("b", c_roundf(v * idd))
    return bytes(out)


def dq8_0(data, n):
    y = []
    for b in range(n // 32):
        blk = data[34 * b:34 * b + 34]
        d = F(np.frombuffer(blk[:2], dtype=np.float16)[0])
        for q in struct.unpack("32b", blk[2:]):
            y.append(F(q) * d)
    return y


def q4_0(x):
    out = bytearray()
    for b in range(0, len(x), 32):
        blk = x[b:b + 32]
        amax, mx = F(0), F(0)
        for v in blk:
            if amax < abs(v):
                amax, mx = abs(v), v
        d = mx / F(-8)
        idd = F(1) / d if d != 0 else F(0)
        out += fp16_bytes(d)
        for j in range(16):
            x0 = blk[j] * idd
            x1 = blk[16 + j] * idd
            q0 = min(15, int(np.trunc(x0 + F(8.5))))
            q1 = min(15, int(np.trunc(x1 + F(8.5))))
            out.append(q0 | (q1 << 4))
    return bytes(out)


def dq4_0(data, n):
    y = []
    for b in range(n // 32):
        blk = data[18 * b:18 * b + 18]
        d = F(np.frombuffer(blk[:2], dtype=np.float16)[0])
        lo = [F((q & 0x0F) - 8) * d for q in blk[2:]]
        hi = [F((q >> 4) - 8) * d for q in blk[2:]]
        y += lo + hi
    return y


def q5_0(x):
    out = bytearray()
    for b in range(0, len(x), 32):
        blk = x[b:b + 32]
        amax, mx = F(0), F(0)
        for v in blk:
            if amax < abs(v):
                amax, mx = abs(v), v
        d = mx / F(-16)
        idd = F(1) / d if d != 0 else F(0)
        qh = 0
        qs = bytearray(16)
        for j in range(16):
            x0 = min(31, int(np.trunc(blk[j] * idd + F(16.5))))
            x1 = min(31, int(np.trunc(blk[16 + j] * idd + F(16.5))))
            qs[j] = (x0 & 0x0F) | ((x1 & 0x0F) << 4)
            qh |= ((x0 & 0x10) >> 4) << j
            qh |= ((x1 & 0x10) >> 4) << (j + 16)
        out += fp16_bytes(d) + struct.pack("<I", qh) + bytes(qs)
    return bytes(out)


def dq5_0(data, n):
    y = []
    for b in range(n // 32):
        blk = data[22 * b:22 * b + 22]
        d = F(np.frombuffer(blk[:2], dtype=np.float16)[0])
        qh = struct.unpack("<I", blk[2:6])[0]
        qs = blk[6:]
        lo, hi = [], []
        for j in range(16):
            xh0 = ((qh >> j) << 4) & 0x10
            xh1 = (qh >> (j + 12)) & 0x10
            lo.append(F(((qs[j] & 0x0F) | xh0) - 16) * d)
            hi.append(F(((qs[j] >> 4) | xh1) - 16) * d)
        y += lo + hi
    return y


def make_qkx2_quants(n, nmax, x, weights, rmin, rdelta, nstep):
    mn, mx = x[0], x[0]
    sum_w = weights[0]
    sum_x = sum_w * x[0]
    for i in range(1, n):
        if x[i] < mn: mn = x[i]
        if x[i] > mx: mx = x[i]
        sum_w = sum_w + weights[i]
        sum_x = sum_x + weights[i] * x[i]
    if mn > 0: mn = F(0)
    if mx == mn:
        return F(0), [0] * n, -mn
    iscale = F(nmax) / (mx - mn)
    scale = F(1) / iscale
    L = [0] * n
    best_error = F(0)
    for i in range(n):
        l = nearest_int(iscale * (x[i] - mn))
        L[i] = max(0, min(nmax, l))
        diff = scale * F(L[i]) + mn - x[i]
        best_error = best_error + weights[i] * (diff * diff)
    for step in range(nstep + 1):
        iscale = (F(rmin) + F(rdelta) * F(step) + F(nmax)) / (mx - mn)
        sum_l, sum_l2, sum_xl = F(0), F(0), F(0)
        laux = [0] * n
        for i in range(n):
            l = max(0, min(nmax, nearest_int(iscale * (x[i] - mn))))
            laux[i] = l
            w = weights[i]
            sum_l = sum_l + w * F(l)
            sum_l2 = sum_l2 + w * F(l) * F(l)
            sum_xl = sum_xl + w * F(l) * x[i]
        D = sum_w * sum_l2 - sum_l * sum_l
        if D > 0:
            this_scale = (sum_w * sum_xl - sum_x * sum_l) / D
            this_min = (sum_l2 * sum_x - sum_l * sum_xl) / D
            if this_min > 0:
                this_min = F(0)
                this_scale = sum_xl / sum_l2
            cur = F(0)
            for i in range(n):
                diff = this_scale * F(laux[i]) + this_min - x[i]
                cur = cur + weights[i] * (diff * diff)
            if cur < best_error:
                L = list(laux)
                best_error, scale, mn = cur, this_scale, this_min
    return scale, L, -mn


def scale_min_k4(j, q):
    if j < 4:
        return q[j] & 63, q[j + 4] & 63
    return (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4), (q[j + 4] >> 4) | ((q[j] >> 6) << 4)


def q4_k(x):
    out = bytearray()
    for s in range(0, len(x), QK_K):
        xb = x[s:s + QK_K]
        L = [0] * QK_K
        scales, mins = [F(0)] * 8, [F(0)] * 8
        max_scale, max_min = F(0), F(0)
        for j in range(8):
            sub = xb[32 * j:32 * j + 32]
            sum_x2 = F(0)
            for v in sub:
                sum_x2 = sum_x2 + v * v
            av_x = F(np.sqrt(sum_x2 / F(32)))
            weights = [av_x + abs(v) for v in sub]
            scales[j], Lj, mins[j] = make_qkx2_quants(32, 15, sub, weights, -1.0, 0.1, 20)
            L[32 * j:32 * j + 32] = Lj
            if scales[j] > max_scale: max_scale = scales[j]
            if mins[j] > max_min: max_min = mins[j]
        inv_scale = F(63) / max_scale if max_scale > 0 else F(0)
        inv_min = F(63) / max_min if max_min > 0 else F(0)
        sc = [0] * 12
        for j in range(8):
            ls = min(63, nearest_int(inv_scale * scales[j]) & 0xFF)
            lm = min(63, nearest_int(inv_min * mins[j]) & 0xFF)
            if j < 4:
                sc[j] = ls
                sc[j + 4] = lm
            else:
                sc[j + 4] = (ls & 0xF) | ((lm & 0xF) << 4)
                sc[j - 4] |= (ls >> 4) << 6
                sc[j] |= (lm >> 4) << 6
        d16, dmin16 = fp16_val(max_scale / F(63)), fp16_val(max_min / F(63))
        for j in range(8):
            scj, mj = scale_min_k4(j, sc)
            d = d16 * F(scj)
            if d == 0:
                continue
            dm = dmin16 * F(mj)
            for ii in range(32):
                L[32 * j + ii] = max(0, min(15, nearest_int((xb[32 * j + ii] + dm) / d)))
        out += fp16_bytes(max_scale / F(63)) + fp16_bytes(max_min / F(63)) + bytes(sc)
        for j in range(0, QK_K, 64):
            out += bytes(L[j + l] | (L[j + l + 32] << 4) for l in range(32))
    return bytes(out)


def dq4_k(data, n):
    y = []
    for b in range(n // QK_K):
        blk = data[144 * b:144 * b + 144]
        d = F(np.frombuffer(blk[0:2], dtype=np.float16)[0])
        mn = F(np.frombuffer(blk[2:4], dtype=np.float16)[0])
        sc = list(blk[4:16])
        q = blk[16:]
        for k, j in enumerate(range(0, QK_K, 64)):
            s1, m1 = scale_min_k4(2 * k, sc)
            s2, m2 = scale_min_k4(2 * k + 1, sc)
            d1, mm1, d2, mm2 = d * F(s1), mn * F(m1), d * F(s2), mn * F(m2)
            qq = q[32 * k:32 * k + 32]
            y += [d1 * F(v & 0xF) - mm1 for v in qq]
            y += [d2 * F(v >> 4) - mm2 for v in qq]
    return y


def make_qx_quants(n, nmax, x):
    mx, amax = F(0), F(0)
    for v in x:
        if abs(v) > amax:
            amax, mx = abs(v), v
    if amax < F(1e-15):
        return F(0), [0] * n
    iscale = F(-nmax) / mx
    L = [0] * n
    sumlx, suml2 = F(0), F(0)
    for i, v in enumerate(x):
        l = max(-nmax, min(nmax - 1, nearest_int(iscale * v)))
        L[i] = l + nmax
        w = v * v
        sumlx = sumlx + w * v * F(l)
        suml2 = suml2 + w * F(l) * F(l)
    scale = sumlx / suml2 if suml2 != 0 else F(0)
    best = scale * sumlx
    for step in range(-9, 10):
        if step == 0:
            continue
        iscale = -(F(nmax) + F(0.1) * F(step)) / mx
        sumlx, suml2 = F(0), F(0)
        for v in x:
            l = max(-nmax, min(nmax - 1, nearest_int(iscale * v)))
            w = v * v
            sumlx = sumlx + w * v * F(l)
            suml2 = suml2 + w * F(l) * F(l)
        if suml2 > 0 and sumlx * sumlx > best * suml2:
            L = [nmax + max(-nmax, min(nmax - 1, nearest_int(iscale * v))) for v in x]
            scale = sumlx / suml2
            best = scale * sumlx
    return scale, L


def q6_k(x):
    out = bytearray()
    for s in range(0, len(x), QK_K):
        xb = x[s:s + QK_K]
        L = [0] * QK_K
        scales = [F(0)] * 16
        max_scale, max_abs = F(0), F(0)
        for ib in range(16):
            scales[ib], Lb = make_qx_quants(16, 32, xb[16 * ib:16 * ib + 16])
            L[16 * ib:16 * ib + 16] = Lb
            if abs(scales[ib]) > max_abs:
                max_abs, max_scale = abs(scales[ib]), scales[ib]
        if max_abs < F(1e-15):
            out += bytes(210)
            continue
        iscale = F(-128) / max_scale
        dval = F(1) / iscale
        sc = [min(127, nearest_int(iscale * scales[ib])) for ib in range(16)]
        d16 = fp16_val(dval)
        for j in range(16):
            d = d16 * F(sc[j])
            if d == 0:
                continue
            for ii in range(16):
                L[16 * j + ii] = max(-32, min(31, nearest_int(xb[16 * j + ii] / d))) + 32
        ql, qh = bytearray(128), bytearray(64)
        for h, j in enumerate(range(0, QK_K, 128)):
            for l in range(32):
                q1, q2, q3, q4 = (L[j + l + k] & 0xF for k in (0, 32, 64, 96))
                ql[64 * h + l] = q1 | (q3 << 4)
                ql[64 * h + l + 32] = q2 | (q4 << 4)
                qh[32 * h + l] = (L[j + l] >> 4) | ((L[j + l + 32] >> 4) << 2) | ((L[j + l + 64] >> 4) << 4) | ((L[j + l + 96] >> 4) << 6)
        out += bytes(ql) + bytes(qh) + struct.pack("16b", *sc) + fp16_bytes(dval)
    return bytes(out)


def dq6_k(data, n):
    y = []
    for b in range(n // QK_K):
        blk = data[210 * b:210 * b + 210]
        d = F(np.frombuffer(blk[208:210], dtype=np.float16)[0])
        sc = struct.unpack("16b", blk[192:208])
        out = [F(0)] * QK_K
        for h in range(2):
            ql, qh = blk[64 * h:64 * h + 64], blk[128 + 32 * h:128 + 32 * h + 32]
            for l in range(32):
                s = sc[8 * h + l // 16:]
                q1 = ((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32
                q2 = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32
                q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32
                q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32
                out[128 * h + l] = d * F(s[0]) * F(q1)
                out[128 * h + l + 32] = d * F(s[2]) * F(q2)
                out[128 * h + l + 64] = d * F(s[4]) * F(q3)
                out[128 * h + l + 96] = d * F(s[6]) * F(q4)
        y += out
    return y


def inputs():
    """Rows of 512: Gaussian weights, a heavy-tailed row with outliers, one all-positive, and edge blocks."""
    rng = np.random.default_rng(27)
    rows = [
        rng.normal(0, 0.02, 512),
        rng.standard_t(3, 512) * 0.05,
        np.abs(rng.normal(0, 1.0, 512)),
        np.concatenate([np.zeros(256), np.full(128, 0.5), np.linspace(-3, 3, 128)]),
    ]
    return [[F(v) for v in r.astype(np.float32)] for r in rows]


def main():
    fmts = {"Q8_0": (q8_0, dq8_0), "Q4_0": (q4_0, dq4_0), "Q5_0": (q5_0, dq5_0), "Q4_K": (q4_k, dq4_k), "Q6_K": (q6_k, dq6_k)}
    rows = inputs()
    result = {"inputs": [[float(v) for v in r] for r in rows]}
    for name, (q, dq) in fmts.items():
        enc = [q(r) for r in rows]
        result[name] = {"bytes": [e.hex() for e in enc],
                        "dequantized": [[float(v) for v in dq(e, len(r))] for e, r in zip(enc, rows)]}
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "ggml_quants_vectors.json")
    with open(out, "w") as f:
        json.dump(result, f, separators=(",", ":"))
    print("wrote", out)


if __name__ == "__main__":
    main()
