#!/usr/bin/python3
"""The supervised ceiling: how much of each attribute a small convolutional network reads from the
synthetic benchmark's pixels when it is trained on the labels themselves.

Usage: /usr/bin/python3 scripts/cnn_probe.py SYNTH_DIR [SIZE ...] [--by-type]   (sizes default: 32 64 128)
Environment: EPOCHS (default 20), SEED (default 0).

pixel_probe.py's readers (a linear map, the nearest image) learn where each finding type appears;
this reader is built not to: its convolutions share weights over the image and the finding and
size heads read a global max over positions, so a finding type learnt at one site is recognised at
another (the test split's held-out combinations). Side and zone heads read a coarse position map
(an average over a 4x4 grid). With --by-type, also the finding's accuracy per (modality, finding,
size) on each held-out split and what the wrong ones were read as: which types the pixels tell
apart at that resolution and which they do not. It sees the labels, which no stage of the caption
model does, so its accuracy is what the image holds at that resolution for a reader of this size,
the bound a caption model is compared with. Needs Debian's python3-torch and python3-numpy (/usr/bin/python3).
"""
import os
import sys

import numpy as np
import torch
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pixel_probe import ATTRIBUTES, block_mean, label, load  # noqa: E402


class Reader(nn.Module):
    def __init__(self, classes):
        super().__init__()
        layers, channels = [], 1
        for width in [32, 64, 64]:
            layers += [nn.Conv2d(channels, width, 3, padding=1), nn.ReLU(),
                       nn.Conv2d(width, width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)]
            channels = width
        self.features = nn.Sequential(*layers)
        self.grid = nn.AdaptiveAvgPool2d(4)
        self.heads = nn.ModuleDict({
            a: nn.Linear(channels if a in ("finding", "size") else channels * 16, len(c))
            for a, c in classes.items()})

    def forward(self, x):
        f = self.features(x)
        pooled, grid = f.amax((2, 3)), self.grid(f).flatten(1)
        return {a: head(pooled if a in ("finding", "size") else grid) for a, head in self.heads.items()}


def resize(images, size):
    """[N, 1, size, size] block means, as pixel_probe reads them."""
    return torch.from_numpy(block_mean(images, size).reshape(len(images), 1, size, size))


def main():
    if len(sys.argv) < 2:
        raise SystemExit(__doc__)
    args = sys.argv[1:]
    by_type = "--by-type" in args
    args = [a for a in args if a != "--by-type"]
    root, sizes = args[0], [int(s) for s in args[1:]] or [32, 64, 128]
    epochs, seed = int(os.environ.get("EPOCHS", 20)), int(os.environ.get("SEED", 0))
    torch.set_num_threads(os.cpu_count() or 1)
    torch.set_flush_denormal(True)
    splits = {s: load(root, s) for s in ["train", "test_seen", "test"]}
    train_rows = splits["train"][0]
    classes = {a: sorted({label(r, a) for r in train_rows}) for a in ATTRIBUTES}
    targets = {s: {a: torch.tensor([classes[a].index(label(r, a)) if label(r, a) in classes[a] else -1
                                    for r in rows]) for a in ATTRIBUTES}
               for s, (rows, _) in splits.items()}
    print("| split | px | " + " | ".join(ATTRIBUTES) + " |")
    print("|---|---:|" + "---:|" * len(ATTRIBUTES))
    results, per_type = [], []
    for size in sizes:
        torch.manual_seed(seed)
        x = {s: resize(images, size) for s, (_, images) in splits.items()}
        mean, std = x["train"].mean(), x["train"].std()
        x = {s: (v - mean) / std for s, v in x.items()}
        model = Reader(classes)
        opt = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=1e-4)
        steps = epochs * ((len(x["train"]) + 31) // 32)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=2e-3, total_steps=steps)
        for _ in range(epochs):
            model.train()
            for idx in torch.randperm(len(x["train"])).split(32):
                out = model(x["train"][idx])
                loss = sum(nn.functional.cross_entropy(out[a], targets["train"][a][idx]) for a in ATTRIBUTES)
                opt.zero_grad()
                loss.backward()
                opt.step()
                sched.step()
        model.eval()
        for split in ["test_seen", "test"]:
            with torch.no_grad():
                out = model(x[split])
            cells = [f"{(out[a].argmax(1) == targets[split][a]).float().mean().item():.3f}" for a in ATTRIBUTES]
            results.append(f"| {split} | {size} | " + " | ".join(cells) + " |")
            print(results[-1], flush=True)
            read = [classes["finding"][k] for k in out["finding"].argmax(1).tolist()]
            per_type.append((split, size, splits[split][0], read))
    if by_type:
        print("\n| split | px | modality | finding | size | finding read (studies) | read instead |")
        print("|---|---:|---|---|---|---:|---|")
        for split, size, rows, read in per_type:
            groups = {}
            for r, got in zip(rows, read):
                if r["finding"] != "normal":
                    groups.setdefault((r["modality"], r["finding"], r["size"]), []).append(got)
            for key in sorted(groups):
                got = groups[key]
                wrong = {}
                for g in got:
                    if g != key[1]:
                        wrong[g] = wrong.get(g, 0) + 1
                instead = ", ".join(f"{g} {n}" for g, n in sorted(wrong.items(), key=lambda kv: -kv[1]))
                right = sum(g == key[1] for g in got) / len(got)
                print(f"| {split} | {size} | " + " | ".join(key) + f" | {right:.2f} ({len(got)}) | {instead} |")


if __name__ == "__main__":
    main()
