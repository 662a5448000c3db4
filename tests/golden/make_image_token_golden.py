#!/usr/bin/python3
"""Makes tests/data/image_token_golden/tiny_blip2_opt.safetensors: HF transformers'
Blip2ForConditionalGeneration on the tiny_blip2_opt fixture with today's hub config field
`image_token_index` set, so that input_ids carry the processor's image placeholders (one per
query token, before the text) and the model writes the projected queries into them.

Stored (float32 unless named): pixel_values, input_ids / attention_mask / labels (int64, as
given to HF),
logits, loss, and greedy `generate` tokens (int64) from the placeholders plus the first 3 text
tokens, 16 new tokens, eos 2, pad 1.

Run with the reference peer (../shared/peer/README.md):
  source ../shared/peer/env.sh
  $PY tests/golden/make_image_token_golden.py tests/data/fixtures/tiny_blip2_opt tests/data/image_token_golden
"""
import json
import os
import struct
import sys

import torch
from safetensors.torch import load_file
from transformers import Blip2Config, Blip2ForConditionalGeneration

fixture, out_dir = sys.argv[1], sys.argv[2]
torch.set_num_threads(1)

with open(os.path.join(fixture, "config.json")) as f:
    cfg = json.load(f)
ref = load_file(os.path.join(fixture, "reference.safetensors"))
ids, mask, labels = ref["input_ids"], ref["attention_mask"], ref["labels"]
vocab = cfg["text_config"]["vocab_size"]
image_token = vocab - 1
while bool((ids == image_token).any()):
    image_token -= 1
cfg["image_token_index"] = image_token
config = Blip2Config.from_dict(cfg)
model = Blip2ForConditionalGeneration(config)
missing, unexpected = model.load_state_dict(load_file(os.path.join(fixture, "model.safetensors")), strict=False)
assert not [m for m in missing if "lm_head" not in m], missing
model.eval()

p = cfg.get("num_query_tokens", 32)
b = ids.shape[0]
placeholder_ids = torch.cat([torch.full((b, p), image_token, dtype=torch.long), ids], 1)
placeholder_mask = torch.cat([torch.ones((b, p), dtype=torch.long), mask], 1)
placeholder_labels = torch.cat([torch.full((b, p), -100, dtype=torch.long), labels], 1)
with torch.no_grad():
    out = model(pixel_values=ref["pixel_values"], input_ids=placeholder_ids, attention_mask=placeholder_mask,
                labels=placeholder_labels)
    prompt = placeholder_ids[:, : p + 3]
    generated = model.generate(pixel_values=ref["pixel_values"], input_ids=prompt,
                               attention_mask=torch.ones_like(prompt), max_new_tokens=16, num_beams=1,
                               do_sample=False, eos_token_id=2, pad_token_id=1)

tensors = {
    "pixel_values": ref["pixel_values"],
    "input_ids": placeholder_ids,
    "attention_mask": placeholder_mask,
    "labels": placeholder_labels,
    "logits": out.logits.float(),
    "loss": out.loss.float(),
    "generated": generated,
}

os.makedirs(out_dir, exist_ok=True)
header, blobs, offset = {"__metadata__": {"image_token_index": str(image_token),
                                          "made_by": "tests/golden/make_image_token_golden.py, transformers "
                                                     + __import__("transformers").__version__}}, [], 0
for name in sorted(tensors):
    t = tensors[name].contiguous()
    dtype = {torch.float32: "F32", torch.int64: "I64"}[t.dtype]
    data = t.numpy().tobytes()
    header[name] = {"dtype": dtype, "shape": list(t.shape), "data_offsets": [offset, offset + len(data)]}
    blobs.append(data)
    offset += len(data)
text = json.dumps(header, separators=(",", ":")).encode()
text += b" " * ((8 - len(text) % 8) % 8)
with open(os.path.join(out_dir, "tiny_blip2_opt.safetensors"), "wb") as f:
    f.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))
print("image_token_index", image_token, "generated", generated.tolist())
