#!/usr/bin/env bash
# Captions/s of `msmedcap caption` with greedy decoding and beam search 5 on the synthetic
# benchmark: trains the tiny model's caption stage briefly (what is measured is decoding, not
# caption quality), then captions N test-like images with each setting and prints the
# throughput lines. Usage: scripts/bench_caption.sh [BUILD_DIR] [N_IMAGES] [MODEL_CONFIG]
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
n=${2:-64}
model=${3:-configs/models/tiny.json}
bin="$build/msmedcap"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

"$bin" synth --out "$work/synth" --n "$n" --image-size 256 --seed 1 > /dev/null
mkdir "$work/images"
cp "$work"/synth/images/*.png "$work/images/"
tok=tests/data/tokenizers
cat > "$work/cfg.json" <<JSON
{"tokenizers": {"qformer": "$tok/bert", "decoder": "$tok/opt"},
 "data": {"sources": [{"format": "jsonl", "root": "$work/synth", "annotations": "train.jsonl"}]},
 "loader": {"batch_size": 8, "workers": 2},
 "train": {"max_steps": 10, "log_every": 10,
           "optimizer": {"lr": 1e-3, "warmup_steps": 0, "schedule": "cosine"}}}
JSON
"$bin" train -c "$model" -c configs/stages/caption.json -c "$work/cfg.json" \
  --set train.stage.train_vision=false --run-dir "$work/run" > /dev/null 2>&1
# 14 = "\n" in the test tokenizer; no EOS stop keeps every caption at max_new_tokens, so both
# settings decode the same number of steps.
echo '{"num_beams": 1, "max_new_tokens": 30, "pad_token_id": 1, "eos_token_id": null}' > "$work/greedy.json"
echo '{"num_beams": 5, "max_new_tokens": 30, "pad_token_id": 1, "eos_token_id": null}' > "$work/beam5.json"
for g in greedy beam5; do
  "$bin" caption --run "$work/run" --images "$work/images" --generate "$work/$g.json" \
    --out "$work/$g.jsonl" --batch-size 8 2>&1 | grep -E "captions/s|error" | sed "s/^/$g: /"
done
