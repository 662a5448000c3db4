"""Runs a Python script under CPU bf16 autocast: `python hf_autocast.py SCRIPT ARGS...` is
`python SCRIPT ARGS...` inside `torch.autocast("cpu", dtype=torch.bfloat16)`. scripts/bench.sh
times HF's training step this way beside msmedcap's `train.precision: bf16`, since the peer's
bench_hf.py has no autocast option of its own."""
import runpy
import sys

import torch

if len(sys.argv) < 2:
    sys.exit("usage: hf_autocast.py SCRIPT [ARGS...]")
sys.argv = sys.argv[1:]
with torch.autocast("cpu", dtype=torch.bfloat16):
    runpy.run_path(sys.argv[0], run_name="__main__")
