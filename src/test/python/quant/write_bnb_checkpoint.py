#!/usr/bin/env python3
"""Writes a 4-bit checkpoint of src/test/resources/models/llama-tiny the way transformers + bitsandbytes
lay it out, with this directory's independent quantizer (bnb4bit_reference.py) and its own safetensors
reader and writer (numpy only), so jtune's reader is tested on a file jtune did not write:

    src/test/resources/quant/llama-tiny-nf4-python/{config.json, model.safetensors, expected.json}

Layout per quantized Linear (bitsandbytes' Params4bit / QuantState.as_dict(packed=True)):
  <m>.weight                 uint8 [(n+1)//2, 1]   packed codes, first element in the high nibble
  <m>.weight.absmax          uint8 [blocks]        (double quantization: codes of the dynamic map)
  <m>.weight.quant_map       float32 [16]
  <m>.weight.nested_absmax   float32 [ceil(blocks/256)]
  <m>.weight.nested_quant_map float32 [256]
  <m>.weight.quant_state.bitsandbytes__nf4  uint8 [len]  json.dumps of the quant state
expected.json holds the dequantized values (float32, base64) of every quantized weight, and the logits and
mean next-token NLL of a sequence through the model with those weights, computed in float64 by
src/test/python/reference/reference_forward.py (the pure-Python transcription of transformers' Llama):
a wrong unpacking changes them far beyond fp32 noise.
Run from the repository root: /usr/bin/python3 src/test/python/quant/write_bnb_checkpoint.py
"""
import base64
import json
import os
import struct
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bnb4bit_reference as ref  # noqa: E402

SRC = "src/test/resources/models/llama-tiny"
DST = "src/test/resources/quant/llama-tiny-nf4-python"
PROJ = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def read_safetensors(path):
    raw = open(path, "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    out = {}
    for name, e in header.items():
        if name == "__metadata__":
            continue
        assert e["dtype"] == "F32", (name, e["dtype"])
        a, b = e["data_offsets"]
        out[name] = np.frombuffer(raw[8 + n + a:8 + n + b], dtype="<f4").reshape(e["shape"])
    return out


def write_safetensors(path, tensors):
    """tensors: name -> (dtype string, shape, bytes); data in the given order, header padded to 8."""
    header, pos = {"__metadata__": {"format": "pt"}}, 0
    for name, (dt, shape, data) in tensors.items():
        header[name] = {"dtype": dt, "shape": list(shape), "data_offsets": [pos, pos + len(data)]}
        pos += len(data)
    h = json.dumps(header).encode("utf-8")
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for _, (_, _, data) in tensors.items():
            f.write(data)


def main():
    weights = read_safetensors(os.path.join(SRC, "model.safetensors"))
    os.makedirs(DST, exist_ok=True)
    out, expected = {}, {}
    # float32 tensors first, then uint8, so every tensor is aligned to its element size
    f32, u8 = {}, {}
    dmap = ref.dynamic_map()
    for name, w in weights.items():
        if not (name.endswith(".weight") and name.split(".")[-2] in PROJ):
            f32[name] = ("F32", w.shape, w.astype("<f4").tobytes())
            continue
        values = [np.float32(v) for v in w.reshape(-1)]
        q = ref.quantize4(values, "nf4", True)
        u8[name] = ("U8", ((len(values) + 1) // 2, 1), q["packed"])
        u8[name + ".absmax"] = ("U8", (len(q["qabsmax"]),), q["qabsmax"])
        f32[name + ".quant_map"] = ("F32", (16,), np.array(ref.table("nf4"), dtype="<f4").tobytes())
        f32[name + ".nested_absmax"] = ("F32", (len(q["nested_absmax"]),), np.array(q["nested_absmax"], dtype="<f4").tobytes())
        f32[name + ".nested_quant_map"] = ("F32", (256,), np.array(dmap, dtype="<f4").tobytes())
        state = {"quant_type": "nf4", "blocksize": 64, "dtype": "float32", "shape": list(w.shape),
                 "nested_blocksize": 256, "nested_dtype": "float32", "nested_offset": float(q["offset"])}
        js = json.dumps(state).encode("utf-8")   # as bitsandbytes' pack_dict_to_tensor
        u8[name + ".quant_state.bitsandbytes__nf4"] = ("U8", (len(js),), js)
        deq = ref.dequantize4(q["packed"], len(values), "nf4", "float32", qabsmax=q["qabsmax"],
                              nested_absmax=q["nested_absmax"], offset=q["offset"])
        expected[name] = base64.b64encode(np.array(deq, dtype="<f4").tobytes()).decode("ascii")
    config = json.load(open(os.path.join(SRC, "config.json")))
    config["quantization_config"] = {
        "_load_in_4bit": True, "_load_in_8bit": False, "bnb_4bit_compute_dtype": "float32",
        "bnb_4bit_quant_storage": "uint8", "bnb_4bit_quant_type": "nf4", "bnb_4bit_use_double_quant": True,
        "llm_int8_enable_fp32_cpu_offload": False, "llm_int8_has_fp16_weight": False,
        "llm_int8_skip_modules": None, "llm_int8_threshold": 6.0, "load_in_4bit": True, "load_in_8bit": False,
        "quant_method": "bitsandbytes"}
    out.update(f32)
    out.update(u8)
    write_safetensors(os.path.join(DST, "model.safetensors"), out)
    json.dump(config, open(os.path.join(DST, "config.json"), "w"), indent=2)
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "reference"))
    import reference_forward as rf
    tensors = rf.load_safetensors(os.path.join(SRC, "model.safetensors"))
    for name, b64 in expected.items():
        tensors[name] = (tensors[name][0], [float(v) for v in np.frombuffer(base64.b64decode(b64), dtype="<f4")])
    ids = [1, 17, 5, 99, 42, 8, 63, 120, 3, 77, 14, 2]
    logits = rf.build_model(config, tensors).forward(ids)
    nll = 0.0
    for t in range(len(ids) - 1):
        row = logits[t]
        m = max(row)
        nll += m + np.log(sum(np.exp(v - m) for v in row)) - row[ids[t + 1]]
    json.dump({"generator": "src/test/python/quant/write_bnb_checkpoint.py", "dequantized_f32": expected,
               "input_ids": ids, "logits": logits, "mean_nll": nll / (len(ids) - 1)},
              open(os.path.join(DST, "expected.json"), "w"), indent=1)
    print(f"wrote {DST}: {len(expected)} quantized weights, {len(out)} tensors")


if __name__ == "__main__":
    sys.exit(main())
