#!/usr/bin/env bash
# Loading at full size (docs/PERFORMANCE.md, "Loading"): writes random checkpoints with the
# published names and shapes (no weights can be downloaded here) outside the repository, then
# measures `msmedcap bench load` from a warm page cache, each load in its own process so that
# its peak RSS is its own:
#   - the medium BLIP-2 (configs/bench/medium.json without its SAM branch: ViT-B/16, Q-Former,
#     an OPT-125m-sized decoder; 311 M parameters, 1.2 GB in float32), loaded in fp32, as
#     inference loads (the file's pages shared) and with --copy (as training loads);
#   - BLIP-2 OPT-2.7b from today's hub config and tensor list (tests/data/hub), saved in
#     float16 (7.5 GB, 4 shards), loaded in bf16 and in fp32.
# Usage: scripts/bench_load.sh [--repeat N]
# Environment: BENCH_DIR (default /tmp/msmedcap-bench-load; the checkpoints are kept there for a
#   second run), BUILD_DIR / MSMEDCAP_BIN, THREADS (default: all cores).
set -euo pipefail
cd "$(dirname "$0")/.."

repeat=3
while [[ $# -gt 0 ]]; do
  case "$1" in
    --repeat) repeat="$2"; shift ;;
    *) echo "bench_load.sh: unknown argument '$1' (usage: scripts/bench_load.sh [--repeat N])" >&2; exit 2 ;;
  esac
  shift
done
bin=${MSMEDCAP_BIN:-${BUILD_DIR:-build}/msmedcap}
[[ -x "$bin" ]] || { echo "bench_load.sh: $bin is not built" >&2; exit 1; }
dir=${BENCH_DIR:-/tmp/msmedcap-bench-load}
threads=${THREADS:-0}
mkdir -p "$dir"

medium="$dir/medium-fp32"
blip2="$dir/blip2-opt-2.7b-fp16"
[[ -f "$medium/config.done" ]] || {
  "$bin" --log-level warn bench random-checkpoint -c configs/bench/medium.json --set model.use_sam=false \
    --out "$medium" --dtype fp32
  touch "$medium/config.done"; }
[[ -f "$blip2/config.done" ]] || {
  "$bin" --log-level warn bench random-checkpoint --hub tests/data/hub/Salesforce--blip2-opt-2.7b --out "$blip2" --dtype fp16
  touch "$blip2/config.done"; }

cat > "$dir/medium-weights.json" <<JSON
{"weights": [{"path": "$medium", "prefix": "", "format": "hf"}]}
JSON

record="$dir/load.jsonl"
: > "$record"
for ((i = 0; i < repeat; i++)); do
  for how in "" --copy; do  # as inference loads (file pages shared), and as training does (copied)
    cat "$medium"/*.safetensors > /dev/null  # warm page cache
    "$bin" --log-level warn --threads "$threads" bench load -c configs/bench/medium.json --set model.use_sam=false \
      -c "$dir/medium-weights.json" --record "$record" $how
  done
  cat "$blip2"/*.safetensors > /dev/null
  "$bin" --log-level warn --threads "$threads" --dtype bf16 bench load --hf "$blip2" --record "$record"
  cat "$blip2"/*.safetensors > /dev/null
  "$bin" --log-level warn --threads "$threads" bench load --hf "$blip2" --record "$record"
done
echo "records: $record"
