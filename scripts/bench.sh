#!/usr/bin/env bash
# The performance table (docs/PERFORMANCE.md): this machine's matrix-product roofline and (CPU)
# memory-read bound, one decode-sized product per CPU weight format, the data loader, training
# steps of stage 1 (CLIP; SAM with live and cached encoder outputs) and stage 2, and caption
# generation (greedy and beam 5, batch 1 and 8; on the CPU also greedy and beam 3 in each decoder
# weight format: ATen float32, packed fp32, bf16, int8) on the medium configuration
# (configs/bench/medium.json: ViT-B/16 at 224, SAM ViT-B at 1024, Q-Formers 768x12 with 32
# queries, an OPT-125m-sized decoder). Each row runs in its own process, so its peak RSS is its
# own. Prints a markdown table at the end.
#
# Usage: scripts/bench.sh [--short] [--out FILE.jsonl]
#   --short   the tiny model and one iteration per row: checks the harness, not the speed (CI)
#   --out     where the JSON lines go (default: runs/bench/<date>.jsonl; --short: a temp file)
# Environment: BUILD_DIR (default build), MSMEDCAP_BIN (default $BUILD_DIR/msmedcap),
#   DEVICE (cpu or cuda, default cpu), THREADS (default: all cores), DTYPE (generation on CUDA:
#   fp32, bf16), PRECISION (training on CUDA: fp32, bf16).
set -euo pipefail
cd "$(dirname "$0")/.."

short=0
out=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --short) short=1 ;;
    --out) out="$2"; shift ;;
    *) echo "bench.sh: unknown argument '$1' (usage: scripts/bench.sh [--short] [--out FILE])" >&2; exit 2 ;;
  esac
  shift
done

bin=${MSMEDCAP_BIN:-${BUILD_DIR:-build}/msmedcap}
[[ -x "$bin" ]] || { echo "bench.sh: $bin is not built (run scripts/test.sh or cmake --build build)" >&2; exit 1; }
device=${DEVICE:-cpu}
threads=${THREADS:-0}
dtype=${DTYPE:-fp32}
precision=${PRECISION:-fp32}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

if [[ $short == 1 ]]; then
  model=configs/models/tiny.json
  out=${out:-$work/bench.jsonl}
  mm=(--size 256 --repeats 2)
  membw=(--mib 64 --repeats 1)
  linear=(--rows 1 --in 64 --out 64 --layers 2 --repeats 1)
  loader=(--images 4 --size 64 --epochs 1 --batch-size 2 --workers 1)
  step=(--steps 1 --warmup 0 --text 8)
  gen=(--repeats 1 --warmup 0 --new-tokens 4)
  big=2 small=1 live_batch=2
else
  model=configs/bench/medium.json
  mkdir -p runs/bench
  out=${out:-runs/bench/$(date +%Y%m%d-%H%M%S).jsonl}
  mm=(--size 2048 --repeats 10)
  membw=(--mib 1024 --repeats 5)
  linear=(--rows 1 --in 768 --out 3072 --layers 48 --repeats 20)
  loader=(--images 64 --size 512 --epochs 2 --batch-size 8)
  step=(--steps 2 --warmup 1 --text 32)
  gen=(--repeats 2 --warmup 1 --new-tokens 30)
  big=8 small=1 live_batch=2
fi
: > "$out"
common=(--device "$device" --threads "$threads" --log-level warn)
train=(-c "$model" --set "train.precision=$precision" --record "$out")

run() { echo "+ msmedcap $*" >&2; "$bin" "$@"; }

run "${common[@]}" bench matmul "${mm[@]}" --record "$out"
if [[ $device == cpu ]]; then
  # The memory bound of CPU decoding, and one decode-sized product per weight format.
  run "${common[@]}" bench membw "${membw[@]}" --record "$out"
  for format in fp32 bf16 int8; do
    run "${common[@]}" bench linear "${linear[@]}" --format "$format" --record "$out"
  done
  run "${common[@]}" bench linear "${linear[@]}" --aten --record "$out"
fi
# The loader row decodes JPEGs: a build without OpenCV (the LibTorch-only core) leaves it out.
if "$bin" --version | grep -q 'components:.*opencv'; then
  run "${common[@]}" bench loader "${loader[@]}" --dir "$work/loader" --record "$out"
else
  echo "+ bench loader: left out, $("$bin" --version | grep -o 'components: [a-z ]*') (no OpenCV)" >&2
fi
run "${common[@]}" bench train-step "${train[@]}" -c configs/stages/stage1-clip.json "${step[@]}" --batch "$big" \
  --clip-input live
run "${common[@]}" bench train-step "${train[@]}" -c configs/stages/stage1-sam.json "${step[@]}" --batch "$big" \
  --sam-input cached
for sam in live cached; do
  run "${common[@]}" bench train-step "${train[@]}" -c configs/stages/stage1-sam.json "${step[@]}" \
    --batch "$live_batch" --sam-input "$sam"
done
run "${common[@]}" bench train-step "${train[@]}" -c configs/stages/stage2.json "${step[@]}" --batch "$big" \
  --clip-input live --sam-input cached
for beams in 1 5; do
  for batch in "$small" "$big"; do
    run "${common[@]}" bench generate -c "$model" "${gen[@]}" --beams "$beams" --batch "$batch" --dtype "$dtype" \
      --clip-input live --sam-input cached --record "$out"
  done
done
if [[ $device == cpu ]]; then
  # CPU decoding in each weight format, and ATen's float32 products (the decoder unpacked) for
  # comparison: greedy and beam 3 at batch 1 and 8, the CLIP features cached (decode dominates).
  for beams in 1 3; do
    for batch in "$small" "$big"; do
      for format in aten fp32 bf16 int8; do
        if [[ $format == aten ]]; then set -- --aten; else set -- --dtype "$format"; fi
        run "${common[@]}" bench generate -c "$model" "${gen[@]}" --beams "$beams" --batch "$batch" "$@" \
          --clip-input cached --sam-input cached --record "$out"
      done
    done
  done
fi
echo
echo "records: $out"
"$bin" bench table "$out"
