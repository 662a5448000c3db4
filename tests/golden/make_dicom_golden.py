#!/usr/bin/env python3
"""Makes tests/data/images/dicom_golden.safetensors: what `msmedcap decode-image` must give for
the DICOM test files copied from Debian's python3-pydicom, computed independently with pydicom
(pixel decoding, modality LUT) and numpy (the DICOM linear VOI function, PS3.3 C.11.2.1.2.1,
checked against pydicom's apply_voi_lut on the way).

Run with Debian's python3: /usr/bin/python3 tests/golden/make_dicom_golden.py
"""
import os
import sys

import numpy as np
import pydicom
from pydicom.pixel_data_handlers.util import apply_modality_lut, apply_voi_lut

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from golden_io import write_safetensors  # noqa: E402
IMAGES = os.path.join(HERE, "..", "data", "images")

def window(x, c, w):
    c, w = c - 0.5, w - 1.0
    y = (x - c) / w + 0.5
    y = np.where(x <= c - w / 2, 0.0, y)
    y = np.where(x > c + w / 2, 1.0, y)
    return y

def decode(name, override=None):
    ds = pydicom.dcmread(os.path.join(IMAGES, name))
    x = apply_modality_lut(ds.pixel_array, ds).astype(np.float64)
    if override is not None:
        c, w = override
    elif "WindowCenter" in ds and "WindowWidth" in ds:
        c = float(ds.WindowCenter[0] if ds["WindowCenter"].VM > 1 else ds.WindowCenter)
        w = float(ds.WindowWidth[0] if ds["WindowWidth"].VM > 1 else ds.WindowWidth)
        # Cross-check the formula against pydicom's own windowing (output range of the stored bits).
        ref = apply_voi_lut(ds.pixel_array, ds).astype(np.float64)
        lo, hi = (-(2 ** (ds.BitsStored - 1)), 2 ** (ds.BitsStored - 1) - 1) if ds.PixelRepresentation else (0, 2 ** ds.BitsStored - 1)
        assert np.allclose((ref - lo) / (hi - lo), window(x, c, w), atol=1e-6), name
    else:
        c = None
    if c is not None:
        y = window(x, c, w)
    else:
        y = (x - x.min()) / (x.max() - x.min())
    if ds.PhotometricInterpretation == "MONOCHROME1":
        y = 1.0 - y
    return y.astype(np.float32)[:, :, None]

def main():
    tensors = {
        "CT_small": decode("CT_small.dcm"),                      # rescale -1024, no window: min-max
        "CT_small_w40_400": decode("CT_small.dcm", (40, 400)),   # abdomen window override
        "MR_small": decode("MR_small.dcm"),                      # window 600/1600 from the file
        "MR_small_RLE": decode("MR_small_RLE.dcm"),              # RLE lossless
        "MR_small_bigendian": decode("MR_small_bigendian.dcm"),  # explicit VR big endian
        "MR_small_implicit": decode("MR_small_implicit.dcm"),    # implicit VR little endian
    }
    write_safetensors(os.path.join(IMAGES, "dicom_golden.safetensors"), tensors,
                      {"pydicom": pydicom.__version__, "numpy": np.__version__})
    print({k: v.shape for k, v in tensors.items()})

if __name__ == "__main__":
    main()
