#!/usr/bin/env bash
# The performance table (docs/PERFORMANCE.md): this machine's matrix-product roofline and (CPU)
# memory-read bound, one decode-sized product per CPU weight format, the data loader, training
# steps of stage 1 (CLIP; SAM with live and cached encoder outputs) and stage 2, and caption
# generation (greedy and beam 5, batch 1 and 8; on the CPU also greedy and beam 3 in each decoder
# weight format: ATen float32, packed fp32, bf16, int8, w8a8) on the medium configuration
# (configs/bench/medium.json: ViT-B/16 at 224, SAM ViT-B at 1024, Q-Formers 768x12 with 32
# queries, an OPT-125m-sized decoder). Each row runs in its own process, so its peak RSS is its
# own. Prints a markdown table at the end.
#
# Usage: scripts/bench.sh [--short] [--out FILE.jsonl] [--hf-only]
#   --short   the tiny model and one iteration per row: checks the harness, not the speed (CI)
#   --out     where the JSON lines go (default: runs/bench/<date>.jsonl; --short: a temp file)
#   --hf-only only the side-by-side with HF transformers (below)
#
# Side by side with HF transformers, when its peer is set up (../shared/peer/README.md: PEER_DIR,
# default ../shared/peer, with env.sh and bench_hf.py; HF_MODEL, default
# ~/.cache/msmedcap-ref/medium, made by its make_medium.py): on the same weights' sizes, alternating
# which tool goes first, ROUNDS rounds (default 3), medians: HF generate() against msmedcap's
# `bench generate` with the decoder's products in ATen float32 and packed fp32, bf16, int8 and w8a8
# (greedy and beam 3, batch 1 and 8, 32 new tokens, CLIP live; SBS_CASES picks among them, empty
# for none), HF's stage-2 training step (AdamW, batch 8; SBS_TRAIN=0 leaves it out) against `bench train-step` stage 2 with
# CLIP live and cached, each in float32 and under bf16 autocast (HF's through
# scripts/lib/hf_autocast.py, ours train.precision bf16), and the tokens of
# `msmedcap forward` on the HF weights (fp32, int8, w8a8) against HF's. Left out (with a line saying
# so) when the peer is not there; --short never runs it.
# HF_BLAS_DIR: a folder of libblas.so.3 the HF side runs with (LD_LIBRARY_PATH), e.g.
# /usr/lib/x86_64-linux-gnu/openblas-openmp, the OpenBLAS build msmedcap links; unset: the system's.
# Environment: BUILD_DIR (default build), MSMEDCAP_BIN (default $BUILD_DIR/msmedcap),
#   DEVICE (cpu or cuda, default cpu), THREADS (default: all cores), DTYPE (generation on CUDA:
#   fp32, bf16), PRECISION (training on CUDA: fp32, bf16).
set -euo pipefail
cd "$(dirname "$0")/.."

short=0
out=""
hf_only=0
while [[ $# -gt 0 ]]; do
  case "$1" in
    --short) short=1 ;;
    --out) out="$2"; shift ;;
    --hf-only) hf_only=1 ;;
    *) echo "bench.sh: unknown argument '$1' (usage: scripts/bench.sh [--short] [--out FILE] [--hf-only])" >&2; exit 2 ;;
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


# ---------------------------------------------------------------- side by side with HF
peer=${PEER_DIR:-../shared/peer}
hf_model=${HF_MODEL:-${REF_ROOT:-$HOME/.cache/msmedcap-ref}/medium}
side_by_side() {
  local sbs=$work/sbs rounds=${ROUNDS:-3} new=32 py
  mkdir -p "$sbs"
  # shellcheck source=/dev/null
  source "$peer/env.sh"
  py=$PY
  U() { "$py" "$peer/sbs_util.py" "$@"; }
  U msmedcap-config "$hf_model" "$sbs/model.json"
  hf_out=${out%.jsonl}-hf.jsonl  # its own record file: `bench table` reads msmedcap's rows
  : > "$hf_out"
  record() { echo "{\"bench\": \"sbs\", \"setting\": \"$1\", \"tool\": \"$2\", \"round\": $3, \"seconds\": $4}" >> "$hf_out"; }
  local cases=${SBS_CASES-"greedy:1 greedy:8 beam3:1 beam3:8"}
  [[ -f $sbs/inputs_b8.safetensors ]] || U slice "$hf_model/inputs.safetensors" 8 "$sbs/inputs_b8.safetensors"
  for c in $cases; do
    local b=${c##*:} kind=${c%%:*} k=1
    [[ $kind == beam3 ]] && k=3
    [[ -f $sbs/inputs_b$b.safetensors ]] || U slice "$hf_model/inputs.safetensors" "$b" "$sbs/inputs_b$b.safetensors"
    [[ -f $sbs/gen_k$k.json ]] || U gen-json "$sbs/gen_k$k.json" "$new" "$k"
  done
  hf() {  # case beams batch round
    echo "+ HF generate $1 round $4" >&2
    env ${HF_BLAS_DIR:+LD_LIBRARY_PATH=$HF_BLAS_DIR} \
      "$py" "$peer/bench_hf.py" --model "$hf_model" --inputs "$sbs/inputs_b$3.safetensors" --batch "$3" --beams "$2" \
      --new-tokens "$new" --threads "$(nproc)" --runs 1 --warmup 1 --out "$sbs/hf_${1/:/_}.json" > "$sbs/hf.line" \
      2> "$sbs/hf.log" || { cat "$sbs/hf.log" >&2; return 1; }
    record "$1" hf "$4" "$(U field "$sbs/hf.line" median_s)"
  }
  ms() {  # case beams batch round
    local f extra
    for f in aten fp32 bf16 int8 w8a8; do
      extra=(--dtype "$f")
      [[ $f == aten ]] && extra=(--aten)
      echo "+ msmedcap bench generate $1 $f round $4" >&2
      "$bin" "${common[@]}" bench generate -c "$sbs/model.json" --batch "$3" --beams "$2" --new-tokens "$new" \
        --repeats 1 --warmup 1 --clip-input live "${extra[@]}" --record "$sbs/ms.jsonl" > /dev/null
      record "$1" "$f" "$4" "$(tail -1 "$sbs/ms.jsonl" | "$py" -c 'import json, sys; print(json.load(sys.stdin)["seconds"])')"
    done
  }
  local r c
  for ((r = 1; r <= rounds; r++)); do
    for c in $cases; do
      local b=${c##*:} kind=${c%%:*} k=1
      [[ $kind == beam3 ]] && k=3
      if ((r % 2)); then hf "$c" "$k" "$b" "$r"; ms "$c" "$k" "$b" "$r"; else ms "$c" "$k" "$b" "$r"; hf "$c" "$k" "$b" "$r"; fi
    done
    # The stage-2 training step: Q-Former, queries and projection trained, ViT and OPT frozen, AdamW.
    [[ ${SBS_TRAIN:-1} == 1 ]] || continue
    local first=hf second=ms
    ((r % 2)) || { first=ms; second=hf; }
    for who in $first $second; do
      local p
      for p in fp32 bf16; do
        if [[ $who == hf ]]; then
          # bf16: bench_hf.py under torch.autocast("cpu", torch.bfloat16), as train.precision bf16.
          local wrap=()
          [[ $p == bf16 ]] && wrap=(scripts/lib/hf_autocast.py)
          echo "+ HF train step $p round $r" >&2
          env ${HF_BLAS_DIR:+LD_LIBRARY_PATH=$HF_BLAS_DIR} \
            "$py" "${wrap[@]}" "$peer/bench_hf.py" --model "$hf_model" --inputs "$sbs/inputs_b8.safetensors" --batch 8 \
            --train-step --optimizer adamw --text-tokens 32 --threads "$(nproc)" --runs 1 --warmup 1 > "$sbs/hf.line" \
            2> "$sbs/hf.log" || { cat "$sbs/hf.log" >&2; return 1; }
          record "train:8" "hf_$p" "$r" "$(U field "$sbs/hf.line" median_s)"
        else
          for clip in live cached; do
            echo "+ msmedcap bench train-step stage 2 (clip $clip, $p) round $r" >&2
            "$bin" "${common[@]}" bench train-step -c "$sbs/model.json" -c configs/stages/stage2.json --batch 8 --text 32 \
              --steps 1 --warmup 1 --clip-input "$clip" --set "train.precision=$p" --record "$sbs/ms.jsonl" > /dev/null
            record "train:8" "step_${clip}_$p" "$r" "$(tail -1 "$sbs/ms.jsonl" | "$py" -c 'import json, sys; print(json.load(sys.stdin)["seconds"])')"
          done
        fi
      done
    done
  done
  # Tokens: msmedcap forward on the HF weights against HF's own (the last round's ids).
  for c in $cases; do
    local b=${c##*:} kind=${c%%:*} k=1 f
    [[ $kind == beam3 ]] && k=3
    for f in fp32 int8 w8a8; do
      "$bin" --log-level warn --dtype "$f" forward --hf "$hf_model" --inputs "$sbs/inputs_b$b.safetensors" \
        --output "$sbs/ms_${c/:/_}_$f.safetensors" --generate "$sbs/gen_k$k.json" --prompt-tokens 1
      U compare "$c $f" "$sbs/hf_${c/:/_}.json" "$sbs/ms_${c/:/_}_$f.safetensors" |
        "$py" -c 'import json, sys; r = json.load(sys.stdin); print(json.dumps({"bench": "sbs-tokens", "setting": r["case"], "equal": r["equal"], "first_mismatch": r.get("first_mismatch_row_step")}))' >> "$hf_out"
    done
  done
  "$py" - "$hf_out" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
sbs = [r for r in rows if r["bench"] == "sbs"]
def med(case, tool):
    xs = [r["seconds"] for r in sbs if r["setting"] == case and r["tool"] == tool]
    return statistics.median(xs) if xs else None
print("\n| case | HF s | msmedcap ATen fp32 s | packed fp32 s | bf16 s | int8 s | w8a8 s | HF / ATen | HF / fp32 | HF / bf16 | HF / int8 | HF / w8a8 |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
for case in ["greedy:1", "greedy:8", "beam3:1", "beam3:8"]:
    hf = med(case, "hf")
    t = [med(case, f) for f in ["aten", "fp32", "bf16", "int8", "w8a8"]]
    cell = lambda x: "-" if x is None else f"{x:.3f}"
    ratio = lambda x: "-" if x is None or hf is None else f"{hf / x:.2f}"
    print(f"| {case} | {cell(hf)} | " + " | ".join(cell(x) for x in t) + " | " + " | ".join(ratio(x) for x in t) + " |")
print("\n| stage-2 step, batch 8 (train.precision) | HF s | msmedcap s | HF / msmedcap |")
print("|---|---:|---:|---:|")
for p in ["fp32", "bf16"]:
    hf = med("train:8", "hf_" + p)
    for clip in ["live", "cached"]:
        x = med("train:8", f"step_{clip}_{p}")
        cell = lambda v: "-" if v is None else f"{v:.3f}"
        print(f"| {p}, CLIP {clip} | {cell(hf)} | {cell(x)} | {'-' if x is None or hf is None else f'{hf / x:.2f}'} |")
print("\nTokens of msmedcap forward on the HF weights against HF generate's:")
for r in rows:
    if r["bench"] == "sbs-tokens":
        print(f"- {r['setting']}: {'equal' if r['equal'] else 'differ, first at row/step ' + str(r['first_mismatch'])}")
PY
}

if [[ $hf_only == 0 ]]; then
run "${common[@]}" bench matmul "${mm[@]}" --record "$out"
if [[ $device == cpu ]]; then
  # The memory bound of CPU decoding, and one decode-sized product per weight format.
  run "${common[@]}" bench membw "${membw[@]}" --record "$out"
  for format in fp32 bf16 int8 w8a8; do
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
      for format in aten fp32 bf16 int8 w8a8; do
        if [[ $format == aten ]]; then set -- --aten; else set -- --dtype "$format"; fi
        run "${common[@]}" bench generate -c "$model" "${gen[@]}" --beams "$beams" --batch "$batch" "$@" \
          --clip-input cached --sam-input cached --record "$out"
      done
    done
  done
fi
fi
if [[ $short == 0 && -f $peer/env.sh && -f $peer/bench_hf.py && -f $hf_model/model.safetensors ]]; then
  side_by_side
elif [[ $short == 0 ]]; then
  echo "bench.sh: the side-by-side with HF left out (no peer at $peer or no model at $hf_model; see the header)" >&2
fi
echo
echo "records: $out"
"$bin" bench table "$out"
