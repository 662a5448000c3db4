"""Shared by the golden scripts: a minimal safetensors writer (float32 tensors only) so that the
goldens need nothing beyond Debian's python3 and numpy."""
import json
import struct

import numpy as np


def write_safetensors(path, tensors, metadata):
    """tensors: name -> array-like (numpy or torch CPU); written as little-endian float32."""
    header, blobs, offset = {"__metadata__": metadata}, [], 0
    for name in sorted(tensors):
        array = np.ascontiguousarray(np.asarray(tensors[name]), dtype="<f4")
        data = array.tobytes()
        header[name] = {"dtype": "F32", "shape": list(array.shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))
