#!/usr/bin/python3
"""How much of each attribute simple readers get from the synthetic benchmark's pixels alone.

Usage: /usr/bin/python3 scripts/pixel_probe.py SYNTH_DIR [SIZE ...]   (sizes default: 32 64 128)

For each image size (block means of the 128 px images) and each attribute (finding, side, zone,
size; side, zone and size are "none" for normal studies), fits two readers on the train split's
standardised pixels and scores them on the test_seen and test splits:
  - linear: ridge regression onto one-vs-rest targets (+1/-1), the largest output wins;
  - nearest: the label of the training image with the largest cosine similarity.
They tell what a model's attribute accuracy should be compared with: a model that reads less than
a linear map of the pixels reads little. Prints a markdown table. Needs numpy (Debian's
python3-numpy, for /usr/bin/python3); PNGs are decoded here (8-bit grey, as `msmedcap synth`
writes them).
"""
import json
import struct
import sys
import zlib

import numpy as np

ATTRIBUTES = ["finding", "side", "zone", "size"]


def paeth(a, b, c):
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    return a if pa <= pb and pa <= pc else (b if pb <= pc else c)


def read_grey_png(path):
    data, pos, idat = open(path, "rb").read(), 8, b""
    width = height = 0
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        chunk = data[pos + 8:pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            width, height, depth, colour = struct.unpack(">IIBB", chunk[:10])
            if depth != 8 or colour != 0:
                raise SystemExit(f"{path}: expected an 8-bit grey PNG (depth {depth}, colour type {colour})")
        elif kind == b"IDAT":
            idat += chunk
    raw = zlib.decompress(idat)
    image = np.zeros((height, width), np.float32)
    prev = [0] * width
    for y in range(height):
        kind = raw[y * (width + 1)]
        line = list(raw[y * (width + 1) + 1:(y + 1) * (width + 1)])
        cur = [0] * width
        for x in range(width):
            left = cur[x - 1] if x else 0
            up_left = prev[x - 1] if x else 0
            pred = [0, left, prev[x], (left + prev[x]) // 2, paeth(left, prev[x], up_left)][kind]
            cur[x] = (line[x] + pred) & 255
        image[y] = cur
        prev = cur
    return image / 255.0


def load(root, split):
    rows = [json.loads(line) for line in open(f"{root}/{split}.jsonl") if line.strip()]
    return rows, np.stack([read_grey_png(f"{root}/{row['image']}") for row in rows])


def label(row, attribute):
    if attribute != "finding" and row["finding"] == "normal":
        return "none"
    return str(row[attribute])


def block_mean(images, size):
    n, h, w = images.shape
    if h % size or w % size:
        raise SystemExit(f"size {size} does not divide the {h}x{w} images")
    return images.reshape(n, size, h // size, size, w // size).mean((2, 4)).reshape(n, -1)


def main():
    if len(sys.argv) < 2:
        raise SystemExit(__doc__)
    root, sizes = sys.argv[1], [int(s) for s in sys.argv[2:]] or [32, 64, 128]
    train_rows, train_images = load(root, "train")
    print("| split | px | " + " | ".join(f"{a} linear | {a} nearest" for a in ATTRIBUTES) + " |")
    print("|---|---:|" + "---:|" * (2 * len(ATTRIBUTES)))
    for split in ["test_seen", "test"]:
        rows, images = load(root, split)
        for size in sizes:
            a, b = block_mean(train_images, size), block_mean(images, size)
            mean, std = a.mean(0), a.std(0) + 1e-3
            a, b = (a - mean) / std, (b - mean) / std
            ridge = 0.1 * a.shape[1]
            unit_a = a / np.linalg.norm(a, axis=1, keepdims=True)
            nearest = ((b / np.linalg.norm(b, axis=1, keepdims=True)) @ unit_a.T).argmax(1)
            cells = []
            for attribute in ATTRIBUTES:
                y_train = [label(r, attribute) for r in train_rows]
                y_test = [label(r, attribute) for r in rows]
                classes = sorted(set(y_train))
                targets = np.array([[y == c for c in classes] for y in y_train], np.float32) * 2 - 1
                if a.shape[1] <= len(a):  # primal or dual form, whichever system is smaller
                    weights = np.linalg.solve(a.T @ a + ridge * np.eye(a.shape[1]), a.T @ targets)
                else:
                    weights = a.T @ np.linalg.solve(a @ a.T + ridge * np.eye(len(a)), targets)
                linear = np.mean([classes[k] == y for k, y in zip((b @ weights).argmax(1), y_test)])
                near = np.mean([y_train[k] == y for k, y in zip(nearest, y_test)])
                cells += [f"{linear:.3f}", f"{near:.3f}"]
            print(f"| {split} | {size} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
