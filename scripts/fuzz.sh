#!/usr/bin/env bash
# Builds the libFuzzer targets (tests/fuzz/) with Debian's clang under AddressSanitizer and
# UndefinedBehaviorSanitizer and runs each for a bounded time, seeded with the project's own
# fixtures and every crash input kept under tests/data/fuzz/<target>/ (regressions: they run
# first, and a crash among them fails the script at once; the unit suite replays them too,
# through the same target code in tests/fuzz/targets.cpp).
#
# Usage: scripts/fuzz.sh [TARGET...]   (default: safetensors config datasets tokenizers sentencepiece image csv json_depth)
# Environment: FUZZ_SECONDS per target (default 60), FUZZ_BUILD (default build-fuzz),
#   FUZZ_OUT (default runs/fuzz: corpora, logs and new crash inputs), SKIP_INSTALL=1.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
seconds=${FUZZ_SECONDS:-60}
build=${FUZZ_BUILD:-build-fuzz}
out=${FUZZ_OUT:-runs/fuzz}
targets=("$@")
[[ ${#targets[@]} -gt 0 ]] || targets=(safetensors config datasets tokenizers sentencepiece image csv json_depth)

if [[ ${SKIP_INSTALL:-0} != 1 ]]; then
  ./scripts/install_deps.sh
  missing=()
  for p in clang libclang-rt-14-dev; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [[ ${#missing[@]} -gt 0 ]]; then
    sudo=""; [[ $(id -u) -ne 0 ]] && sudo=sudo
    $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
  fi
fi

CXX=clang++ cmake -S tests/fuzz -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo > /dev/null
cmake --build "$build" -j "$(nproc)"

# Seeds: what each parser reads in the project's own tests.
seed() {
  local target=$1 dir=$2
  mkdir -p "$dir"
  case "$target" in
    safetensors) find tests/data -name '*.safetensors' -size -512k -exec cp {} "$dir/" \; ;;
    config)
      local i=0
      for f in configs/*/*.json tests/data/*.json; do
        { echo "runtime.threads=2"; cat "$f"; } > "$dir/seed-$((i++))"
      done ;;
    datasets)
      # The first byte picks the reader (see fuzz_datasets.cpp): 0 jsonl, 1 csv, 2 lavis,
      # 3 medicat, 4 r2gen, 5 roco, 6 rocov2.
      local pairs=("0:tests/data/datasets/generic/captions.jsonl" "1:tests/data/datasets/generic/captions.csv"
                   "2:tests/data/datasets/generic/lavis.json" "4:tests/data/datasets/r2gen/annotation.json"
                   "6:tests/data/datasets/rocov2/test_captions.csv")
      for p in "${pairs[@]}"; do
        { printf "\\x0${p%%:*}"; cat "${p#*:}"; } > "$dir/seed-${p%%:*}"
      done ;;
    tokenizers) printf 'chest x-ray: 2.5 cm nodule in the right upper lobe\n' > "$dir/seed-0"
                printf 'Ré-évaluation — ×3 \xe2\x80\x8b zero width, emoji \xf0\x9f\x98\x80' > "$dir/seed-1" ;;
    sentencepiece)
      # The first byte picks (see targets.cpp): even, text to encode; odd, a model file.
      printf '\x00chest x-ray: 2.5 cm nodule in the right upper lobe\n' > "$dir/seed-text"
      local tmp; tmp=$(mktemp -d)
      for i in $(seq 20); do echo "no pleural effusion, heart size normal; a 3 mm lesion in the left kidney"; done > "$tmp/corpus.txt"
      spm_train --input="$tmp/corpus.txt" --model_prefix="$tmp/spm" --vocab_size=60 --model_type=bpe --normalization_rule_name=identity --minloglevel=2 > /dev/null 2>&1
      { printf '\x01'; cat "$tmp/spm.model"; } > "$dir/seed-model"
      rm -rf "$tmp" ;;
    image) find tests/data/images -type f -size -256k -exec cp {} "$dir/" \; ;;
    csv) cp tests/data/datasets/generic/captions.csv tests/data/datasets/rocov2/test_captions.csv "$dir/" ;;
    json_depth) cp configs/models/tiny.json tests/data/datasets/generic/lavis.json "$dir/" ;;
  esac
}

mkdir -p "$out"
status=0
for t in "${targets[@]}"; do
  bin="$build/fuzz_$t"
  [[ -x "$bin" ]] || { echo "fuzz.sh: no target '$t'" >&2; exit 2; }
  corpus="$out/$t/corpus"
  mkdir -p "$corpus" "$out/$t/crashes"
  seed "$t" "$corpus"
  # Regressions first: every kept crash input must now pass.
  if compgen -G "tests/data/fuzz/$t/*" > /dev/null; then
    "$bin" -runs=0 tests/data/fuzz/$t/* > "$out/$t/regressions.log" 2>&1 ||
      { echo "[fuzz] $t: a kept crash input crashes again (see $out/$t/regressions.log)"; status=1; continue; }
  fi
  # Each run writes a few hundred lines of coverage progress; the summary line is kept.
  if "$bin" -max_total_time="$seconds" -rss_limit_mb=4096 -timeout=10 -print_final_stats=1 \
       -artifact_prefix="$root/$out/$t/crashes/" "$corpus" > "$out/$t/fuzz.log" 2>&1; then
    runs=$(grep -Eo 'Done [0-9]+ runs' "$out/$t/fuzz.log" | tail -1 | grep -Eo '[0-9]+')
    echo "[fuzz] $t: ${runs:-?} executions in ${seconds} s, no crash; corpus $(ls "$corpus" | wc -l) inputs"
  else
    echo "[fuzz] $t: CRASH, input in $out/$t/crashes/ (log $out/$t/fuzz.log)"
    grep -E "ERROR|what\(\)|SUMMARY" "$out/$t/fuzz.log" | head -5
    status=1
  fi
done
exit $status
