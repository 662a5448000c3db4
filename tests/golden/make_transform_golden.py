#!/usr/bin/env python3
"""Makes tests/data/images/transform_input.png (a 37x53 RGB test pattern) and
transform_golden.safetensors: the CLIP and SAM branch inputs computed with Debian's PyTorch
(torch.nn.functional.interpolate with antialias=True, which reproduces PIL's resampling:
bicubic a=-0.5 / bilinear, support widened by the downscale factor), the CLIP and ImageNet
mean/std, SAM's ResizeLongestSide rounding and zero padding bottom/right.

Run with Debian's python3 and python3-torch: /usr/bin/python3 tests/golden/make_transform_golden.py
"""
import os
import sys
import struct
import zlib

import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from golden_io import write_safetensors  # noqa: E402
IMAGES = os.path.join(HERE, "..", "data", "images")
CLIP_MEAN, CLIP_STD = (0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)
IMNET_MEAN, IMNET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)

def pattern(h, w):
    rng = np.random.default_rng(7)
    y, x = np.mgrid[0:h, 0:w]
    img = np.stack([(x * 255 / (w - 1)), (y * 255 / (h - 1)), ((x + y) % 8) * 32.0], axis=-1)
    img[10:20, 15:30] = [250, 20, 40]  # a sharp block: ringing shows in bicubic
    img = img + rng.integers(-10, 11, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)

def write_png(path, rgb):
    h, w, _ = rgb.shape
    raw = b"".join(b"\x00" + rgb[r].tobytes() for r in range(h))
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
    png += chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")
    open(path, "wb").write(png)

def norm(x, mean, std):
    return (x - torch.tensor(mean).view(3, 1, 1)) / torch.tensor(std).view(3, 1, 1)

def clip(x, s):
    y = F.interpolate(x[None], size=(s, s), mode="bicubic", antialias=True, align_corners=False)[0].clamp(0, 1)
    return norm(y, CLIP_MEAN, CLIP_STD)

def sam(x, s):
    h, w = x.shape[1:]
    scale = s / max(h, w)
    nh, nw = int(h * scale + 0.5), int(w * scale + 0.5)
    y = F.interpolate(x[None], size=(nh, nw), mode="bilinear", antialias=True, align_corners=False)[0].clamp(0, 1)
    out = torch.zeros(3, s, s)
    out[:, :nh, :nw] = norm(y, IMNET_MEAN, IMNET_STD)
    return out

def main():
    rgb = pattern(37, 53)
    write_png(os.path.join(IMAGES, "transform_input.png"), rgb)
    x = torch.from_numpy(rgb).permute(2, 0, 1).float() / 255.0
    tensors = {"clip_24": clip(x, 24), "clip_80": clip(x, 80), "sam_32": sam(x, 32), "sam_96": sam(x, 96)}
    write_safetensors(os.path.join(IMAGES, "transform_golden.safetensors"), tensors, {"torch": torch.__version__})
    print({k: tuple(v.shape) for k, v in tensors.items()})

if __name__ == "__main__":
    main()
