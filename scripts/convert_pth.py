#!/usr/bin/python3
"""Converts a PyTorch .pth checkpoint (LAVIS / MSMedCap / original SAM) to safetensors.

Tensor names are kept as they are: msmedcap renames them in one place, its weight map
(`"format": "lavis"` or `"sam"` in a weights entry). The output is written like Python's
safetensors package writes it (tensors sorted by dtype then name, header padded to 8 bytes),
through a temporary file and a rename.

Pickle files can run code when loaded. This script loads with torch.load(weights_only=True),
which refuses anything but tensors and plain containers; --unsafe lifts that for files you trust.

  /usr/bin/python3 scripts/convert_pth.py blip2_pretrained.pth blip2_pretrained.safetensors
Needs Debian's python3-torch (scripts/install_deps.sh installs it).
"""
import argparse
import json
import os
import struct
import sys

import torch

# safetensors' Rust Dtype enum order; the writer sorts by it, descending.
DTYPES = [
    (torch.bool, "BOOL"), (torch.uint8, "U8"), (torch.int8, "I8"), (torch.int16, "I16"),
    (torch.float16, "F16"), (torch.bfloat16, "BF16"), (torch.int32, "I32"),
    (torch.float32, "F32"), (torch.float64, "F64"), (torch.int64, "I64"),
]
ORDER = {"BOOL": 0, "U8": 1, "I8": 2, "I16": 5, "F16": 7, "BF16": 8, "I32": 9, "F32": 11,
         "F64": 12, "I64": 13}
NAME = dict(DTYPES)


def fail(message):
    print(f"convert_pth: error: {message}", file=sys.stderr)
    sys.exit(1)


def state_dict_of(obj, key):
    if key is not None:
        if not isinstance(obj, dict) or key not in obj:
            fail(f"no '{key}' entry in the checkpoint")
        obj = obj[key]
    elif isinstance(obj, dict) and isinstance(obj.get("model"), dict):
        obj = obj["model"]  # LAVIS: {"model": ..., "optimizer": ..., "config": ...}
    elif isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict):
        fail("the checkpoint holds no dict of tensors")
    tensors = {k: v for k, v in obj.items() if torch.is_tensor(v)}
    if not tensors:
        fail("the checkpoint holds no tensors")
    return tensors


def write_safetensors(path, tensors, metadata):
    entries = []
    for name, t in tensors.items():
        if t.dtype not in NAME:
            fail(f"tensor '{name}' has dtype {t.dtype}, which safetensors cannot hold")
        entries.append((name, NAME[t.dtype], t.detach().cpu().contiguous()))
    entries.sort(key=lambda e: (-ORDER[e[1]], e[0]))
    header = {"__metadata__": metadata}
    offset = 0
    blobs = []
    for name, dtype, t in entries:
        raw = t.to(torch.uint8) if t.dtype == torch.bool else t.view(torch.uint8)
        data = raw.numpy().tobytes() if t.numel() else b""
        header[name] = {"dtype": dtype, "shape": list(t.shape), "data_offsets": [offset, offset + len(data)]}
        offset += len(data)
        blobs.append(data)
    text = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    text += b" " * ((8 - len(text) % 8) % 8)
    temp = path + ".tmp"
    with open(temp, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for blob in blobs:
            f.write(blob)
        f.flush()
        os.fsync(f.fileno())
    os.replace(temp, path)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("input", help=".pth / .pt checkpoint")
    parser.add_argument("output", help=".safetensors to write")
    parser.add_argument("--key", help="entry holding the weights (default: 'model', else 'state_dict')")
    parser.add_argument("--unsafe", action="store_true", help="full unpickling (runs code from the file)")
    args = parser.parse_args()
    if not os.path.isfile(args.input):
        fail(f"{args.input}: no such file")
    try:
        obj = torch.load(args.input, map_location="cpu", weights_only=not args.unsafe)
    except Exception as e:  # a corrupt file or a pickle that needs more than tensors
        fail(f"{args.input}: cannot load: {str(e).splitlines()[0] if str(e) else type(e).__name__}"
             + ("" if args.unsafe else " (if you trust the file, --unsafe loads arbitrary pickles)"))
    tensors = state_dict_of(obj, args.key)
    write_safetensors(args.output, tensors, {"format": "pt", "source": os.path.basename(args.input)})
    total = sum(t.numel() for t in tensors.values())
    print(f"[convert] {len(tensors)} tensors, {total} values -> {args.output}", file=sys.stderr)


if __name__ == "__main__":
    main()
