#!/usr/bin/python3
"""What the frozen SAM encoder's features tell of each study's finding, read by simple readers.

Usage: /usr/bin/python3 scripts/feature_probe.py SYNTH_DIR TRAIN_CACHE SPLIT=CACHE ... [--head CHECKPOINT [--by-type]]

The caches are `msmedcap extract-features --branch sam` folders of the benchmark's splits
(TRAIN_CACHE of train.jsonl, each SPLIT=CACHE of SPLIT.jsonl). Readers, fitted on the train split
and scored on each other split:
  - pooled linear: ridge regression (one-vs-rest, +1/-1) on each channel's maximum and mean over
    positions; what a reader that sums over positions can get, as a Q-Former's cross-attention
    over channel tokens can;
  - with --head (a sam_pretrain checkpoint's model.safetensors with `sam_pretrain_classes`): the
    per-pixel class head itself, read per image three ways, over the studies with a finding:
    "peak" (the class of the highest probability anywhere), "mass" (of the largest summed
    probability), "votes" (of the most pixels whose most probable class is not background; the
    peak where there is none). The head is linear per position, so its logits are read at the
    embedding's grid, before the upsampling that training applies.
With --by-type, also the head's "peak" reading per (modality, finding, size) and split: which
findings the encoder tells apart and which it does not.
The labels are the benchmark's own attribute fields: this measures the encoder, it trains nothing
that the caption model uses. Prints a markdown table. Needs numpy.
"""
import json
import os
import struct
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pixel_probe import label  # noqa: E402

DTYPES = {"F16": np.float16, "F32": np.float32}  # BF16 is widened by hand below


def read_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for key, info in header.items():
        if key == "__metadata__":
            continue
        start, end = info["data_offsets"]
        if info["dtype"] == "BF16":
            raw = np.frombuffer(data[start:end], np.uint16).astype(np.uint32) << 16
            array = raw.view(np.float32)
        else:
            array = np.frombuffer(data[start:end], DTYPES[info["dtype"]])
        out[key] = array.reshape(info["shape"]).astype(np.float32)
    return out


def read_cache(folder):
    index = json.load(open(f"{folder}/model.safetensors.index.json"))
    tensors = {}
    for shard in sorted(set(index["weight_map"].values())):
        tensors.update(read_safetensors(f"{folder}/{shard}"))
    return {key.split("/")[-1]: value for key, value in tensors.items()}  # image file name -> [C, h, w]


def load(root, split, folder):
    rows = [json.loads(line) for line in open(f"{root}/{split}.jsonl") if line.strip()]
    cache = read_cache(folder)
    missing = [r["image"] for r in rows if r["image"].split("/")[-1] not in cache]
    if missing:
        raise SystemExit(f"{folder}: no features for {len(missing)} images of {split}.jsonl, e.g. {missing[0]}")
    return rows, np.stack([cache[r["image"].split("/")[-1]] for r in rows])


def pooled(features):
    return np.concatenate([features.max((2, 3)), features.mean((2, 3))], 1)


def ridge_fit(a, labels, ridge):
    classes = sorted(set(labels))
    targets = np.array([[y == c for c in classes] for y in labels], np.float32) * 2 - 1
    weights = np.linalg.solve(a.T @ a + ridge * np.eye(a.shape[1]), a.T @ targets)
    return classes, weights


def head_readouts(features, weight, bias):
    logits = np.einsum("kc,nchw->nkhw", weight, features) + bias[None, :, None, None]
    logits -= logits.max(1, keepdims=True)
    prob = np.exp(logits)
    prob /= prob.sum(1, keepdims=True)
    fg = prob[:, 1:]
    peak = fg.max((2, 3)).argmax(1) + 1
    mass = fg.sum((2, 3)).argmax(1) + 1
    best = prob.argmax(1)  # [N, h, w]
    counts = np.stack([(best == k).sum((1, 2)) for k in range(1, prob.shape[1])], 1)
    votes = np.where(counts.max(1) > 0, counts.argmax(1) + 1, peak)
    return {"peak": peak, "mass": mass, "votes": votes}


def main():
    args = sys.argv[1:]
    head = None
    by_type = "--by-type" in args
    if by_type:
        args.remove("--by-type")
    if "--head" in args:
        i = args.index("--head")
        head = read_safetensors(args[i + 1])
        del args[i:i + 2]
    if len(args) < 3 or (by_type and head is None):
        raise SystemExit(__doc__)
    root, train_cache, splits = args[0], args[1], [a.split("=", 1) for a in args[2:]]
    train_rows, train_features = load(root, "train", train_cache)
    a = pooled(train_features)
    mean, std = a.mean(0), a.std(0) + 1e-6
    a = (a - mean) / std
    fits = {attr: ridge_fit(a, [label(r, attr) for r in train_rows], 1.0) for attr in ["finding", "side"]}
    values = None
    if head is not None:
        if "sam_pretrain_classes.weight" not in head:
            raise SystemExit("--head: the checkpoint has no sam_pretrain_classes (train.stage.mask_classes)")
        rules = json.load(open("configs/attributes/synthetic.json"))
        values = ["normal"] + list(rules["attributes"]["finding"]["values"])
        if len(values) != head["sam_pretrain_classes.weight"].shape[0]:
            raise SystemExit("--head: the head's classes differ from configs/attributes/synthetic.json's findings")
    columns = ["finding, pooled linear", "side, pooled linear"]
    if head is not None:
        columns += [f"finding, head {k}" for k in ["peak", "mass", "votes"]]
    per_type = {}
    print("| split | " + " | ".join(columns) + " |")
    print("|---|" + "---:|" * len(columns))
    for split, folder in [("train", train_cache)] + splits:
        rows, features = load(root, split, folder)
        b = (pooled(features) - mean) / std
        cells = []
        for attr, (classes, weights) in fits.items():
            truth = [label(r, attr) for r in rows]
            cells.append(f"{np.mean([classes[k] == y for k, y in zip((b @ weights).argmax(1), truth)]):.3f}")
        if head is not None:
            reads = head_readouts(features, head["sam_pretrain_classes.weight"], head["sam_pretrain_classes.bias"])
            found = [i for i, r in enumerate(rows) if r["finding"] != "normal"]
            for name in ["peak", "mass", "votes"]:
                cells.append(f"{np.mean([values[reads[name][i]] == rows[i]['finding'] for i in found]):.3f}")
            for i in found:
                key = (rows[i]["modality"], rows[i]["finding"], rows[i]["size"])
                per_type.setdefault(key, {}).setdefault(split, []).append(values[reads["peak"][i]] == rows[i]["finding"])
        print(f"| {split} | " + " | ".join(cells) + " |", flush=True)
    if by_type:
        names = ["train"] + [split for split, _ in splits]
        print("\n| modality | finding | size | " + " | ".join(f"head peak, {n} (studies)" for n in names) + " |")
        print("|---|---|---|" + "---:|" * len(names))
        for key in sorted(per_type):
            got = per_type[key]
            cells = [f"{np.mean(got[n]):.2f} ({len(got[n])})" if n in got else "-" for n in names]
            print("| " + " | ".join(key) + " | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
