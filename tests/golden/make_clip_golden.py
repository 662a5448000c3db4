#!/usr/bin/python3
"""Makes tests/data/tiny_clip_vision: a tiny HF-layout CLIPVisionModel (config.json,
model.safetensors) and its reference outputs, computed with PyTorch's own modules
(torch.nn.MultiheadAttention, layer_norm, conv2d) in float64 -- an implementation independent of
msmedcap's. HF semantics (transformers CLIPVisionTransformer): embeddings = [class; patches] +
positions, pre_layrnorm, pre-LN blocks with QuickGELU, last_hidden_state without a final norm,
pooler_output = post_layernorm(CLS).

  /usr/bin/python3 tests/golden/make_clip_golden.py tests/data/tiny_clip_vision
"""
import json
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "scripts"))
from convert_pth import write_safetensors  # noqa: E402  (msmedcap's own writer)

HIDDEN, INTER, LAYERS, HEADS, IMAGE, PATCH, EPS = 32, 64, 2, 4, 16, 8, 1e-5


def loud(shape, kind, gen):
    # The fixtures' "loud" init: matrices N(0, 1/fan_in), norms 1 + 0.1 N, biases 0.1 N.
    if kind == "matrix":
        fan_in = 1
        for d in shape[1:]:
            fan_in *= d
        return torch.randn(shape, generator=gen, dtype=torch.float64) / fan_in ** 0.5
    if kind == "norm":
        return 1 + 0.1 * torch.randn(shape, generator=gen, dtype=torch.float64)
    if kind == "bias":
        return 0.1 * torch.randn(shape, generator=gen, dtype=torch.float64)
    return 0.5 * torch.randn(shape, generator=gen, dtype=torch.float64)


def main(out_dir):
    gen = torch.Generator().manual_seed(0)
    grid = IMAGE // PATCH
    w = {}
    p = "vision_model."
    w[p + "embeddings.class_embedding"] = loud([HIDDEN], "other", gen)
    w[p + "embeddings.patch_embedding.weight"] = loud([HIDDEN, 3, PATCH, PATCH], "matrix", gen)
    w[p + "embeddings.position_embedding.weight"] = loud([grid * grid + 1, HIDDEN], "other", gen)
    for name in ("pre_layrnorm", "post_layernorm"):
        w[p + name + ".weight"] = loud([HIDDEN], "norm", gen)
        w[p + name + ".bias"] = loud([HIDDEN], "bias", gen)
    for i in range(LAYERS):
        q = f"{p}encoder.layers.{i}."
        for proj in ("q_proj", "k_proj", "v_proj", "out_proj"):
            w[q + f"self_attn.{proj}.weight"] = loud([HIDDEN, HIDDEN], "matrix", gen)
            w[q + f"self_attn.{proj}.bias"] = loud([HIDDEN], "bias", gen)
        for ln in ("layer_norm1", "layer_norm2"):
            w[q + ln + ".weight"] = loud([HIDDEN], "norm", gen)
            w[q + ln + ".bias"] = loud([HIDDEN], "bias", gen)
        w[q + "mlp.fc1.weight"] = loud([INTER, HIDDEN], "matrix", gen)
        w[q + "mlp.fc1.bias"] = loud([INTER], "bias", gen)
        w[q + "mlp.fc2.weight"] = loud([HIDDEN, INTER], "matrix", gen)
        w[q + "mlp.fc2.bias"] = loud([HIDDEN], "bias", gen)
    # Round the weights to float32 first, so the reference uses exactly the stored values.
    w = {k: v.float().double() for k, v in w.items()}
    pixels = torch.randn([2, 3, IMAGE, IMAGE], generator=gen, dtype=torch.float64).float().double()

    with torch.no_grad():
        patches = F.conv2d(pixels, w[p + "embeddings.patch_embedding.weight"], stride=PATCH).flatten(2).transpose(1, 2)
        cls = w[p + "embeddings.class_embedding"].expand(2, 1, HIDDEN)
        emb = torch.cat([cls, patches], 1) + w[p + "embeddings.position_embedding.weight"]
        h = F.layer_norm(emb, [HIDDEN], w[p + "pre_layrnorm.weight"], w[p + "pre_layrnorm.bias"], EPS)
        for i in range(LAYERS):
            q = f"{p}encoder.layers.{i}."
            attn = torch.nn.MultiheadAttention(HIDDEN, HEADS, batch_first=True, dtype=torch.float64)
            attn.in_proj_weight.copy_(torch.cat([w[q + f"self_attn.{n}_proj.weight"] for n in "qkv"]))
            attn.in_proj_bias.copy_(torch.cat([w[q + f"self_attn.{n}_proj.bias"] for n in "qkv"]))
            attn.out_proj.weight.copy_(w[q + "self_attn.out_proj.weight"])
            attn.out_proj.bias.copy_(w[q + "self_attn.out_proj.bias"])
            x = F.layer_norm(h, [HIDDEN], w[q + "layer_norm1.weight"], w[q + "layer_norm1.bias"], EPS)
            h = h + attn(x, x, x, need_weights=False)[0]
            x = F.layer_norm(h, [HIDDEN], w[q + "layer_norm2.weight"], w[q + "layer_norm2.bias"], EPS)
            x = F.linear(x, w[q + "mlp.fc1.weight"], w[q + "mlp.fc1.bias"])
            x = x * torch.sigmoid(1.702 * x)
            h = h + F.linear(x, w[q + "mlp.fc2.weight"], w[q + "mlp.fc2.bias"])
        pooled = F.layer_norm(h[:, 0], [HIDDEN], w[p + "post_layernorm.weight"], w[p + "post_layernorm.bias"], EPS)
        features = F.layer_norm(h, [HIDDEN], w[p + "post_layernorm.weight"], w[p + "post_layernorm.bias"], EPS)

    os.makedirs(out_dir, exist_ok=True)
    write_safetensors(os.path.join(out_dir, "model.safetensors"), {k: v.float() for k, v in w.items()},
                      {"format": "pt"})
    write_safetensors(os.path.join(out_dir, "reference.safetensors"), {
        "pixel_values": pixels.float(),
        "vision_embeddings_output": emb.float(),
        "vision_last_hidden_state": h.float(),
        "vision_pooler_output": pooled.float(),
        "vision_features": features.float(),
    }, {"format": "pt", "generator": "tests/golden/make_clip_golden.py"})
    config = {"architectures": ["CLIPVisionModel"], "model_type": "clip_vision_model",
              "hidden_size": HIDDEN, "intermediate_size": INTER, "num_hidden_layers": LAYERS,
              "num_attention_heads": HEADS, "image_size": IMAGE, "patch_size": PATCH,
              "hidden_act": "quick_gelu", "layer_norm_eps": EPS, "projection_dim": 16}
    with open(os.path.join(out_dir, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
        f.write("\n")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "tests/data/tiny_clip_vision")
