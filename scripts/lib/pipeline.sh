# Shared by scripts/demo.sh and scripts/experiment_ablation.sh (sourced, not run): build, the
# synthetic benchmark with its tokenizers, and the MSMedCap training pipeline on it
# (decoder LM -> stage 1 per branch -> merge -> stage 2 -> caption fine-tuning).
#
# Knobs (environment): BUILD_DIR (default build), SYNTH_N (studies, default 3000),
# EPOCH_SCALE (multiplies every stage's epochs, e.g. 0.25 for a quick check; default 1),
# ENCODER_PRETRAIN (1, the default: pretrain the branches' encoders first; 0: keep them random),
# FEATURE_CACHE (1, the default: the stages after encoder pretraining read the frozen encoders'
# outputs cached once by extract-features; 0: run the encoders at every step), SAM_EPOCHS (SAM
# pretraining's epochs before EPOCH_SCALE, default 32; the encoder's budget, for experiments),
# TRAIN_PRECISION (every stage's train.precision: fp32 or bf16; default bf16 where the CPU has
# AVX512-BF16 or AMX, whose bf16 products make the demo's steps 1.3-1.7x faster, fp32 elsewhere:
# docs/PERFORMANCE.md), and for short checks BATCH_SIZE and WARMUP_STEPS (every stage's; default:
# the configs').

msmedcap_build() {
  build_dir=${BUILD_DIR:-build}
  local generator=()
  if command -v ninja >/dev/null 2>&1; then generator=(-G Ninja); fi
  if [[ ! -f "$build_dir/CMakeCache.txt" ]]; then
    cmake -S . -B "$build_dir" "${generator[@]}" -DCMAKE_BUILD_TYPE=Release
  fi
  cmake --build "$build_dir" -j "$(nproc)" --target msmedcap
  bin="$build_dir/msmedcap"
}

# train_precision: TRAIN_PRECISION, or bf16 where the CPU multiplies bf16 natively, else fp32.
train_precision() {
  if [[ -n ${TRAIN_PRECISION:-} ]]; then
    echo "$TRAIN_PRECISION"
  elif grep -qw -e avx512_bf16 -e amx_bf16 /proc/cpuinfo 2>/dev/null; then
    echo bf16
  else
    echo fp32
  fi
}

# stage_epochs BASE: BASE x EPOCH_SCALE, at least 1.
stage_epochs() {
  awk -v b="$1" -v s="${EPOCH_SCALE:-1}" 'BEGIN { e = int(b * s + 0.5); print (e < 1 ? 1 : e) }'
}

# prepare_data DIR SEED: DIR/synth (the benchmark), DIR/tokenizers/{qformer,decoder} trained on
# its training captions, DIR/test.json and DIR/test-seen.json (configs whose val_data is the test
# split, unseen combinations, or the test_seen split, unseen studies of seen combinations).
prepare_data() {
  local dir=$1 seed=$2
  if [[ ! -f "$dir/synth/test.jsonl" ]]; then
    "$bin" synth --out "$dir/synth" --n "${SYNTH_N:-3000}" --image-size 128 --seed "$seed"
  fi
  "$bin" train-tokenizer --kind wordpiece --clean --vocab-size 255 \
    --input "$dir/synth/train.jsonl" --out "$dir/tokenizers/qformer"
  "$bin" train-tokenizer --kind sentencepiece --clean --vocab-size 512 \
    --input "$dir/synth/train.jsonl" --out "$dir/tokenizers/decoder" 2> >(grep -v '^sentencepiece' >&2)
  cat > "$dir/data.json" <<JSON
{
  "tokenizers": {"qformer": "$dir/tokenizers/qformer", "decoder": "$dir/tokenizers/decoder"},
  "data": {"sources": [{"format": "jsonl", "root": "$dir/synth", "annotations": "train.jsonl"}]},
  "val_data": {"sources": [{"format": "jsonl", "root": "$dir/synth", "annotations": "val.jsonl"}]}
}
JSON
  cat > "$dir/test.json" <<JSON
{"val_data": {"sources": [{"format": "jsonl", "root": "$dir/synth", "annotations": "test.jsonl"}]}}
JSON
  cat > "$dir/test-seen.json" <<JSON
{"val_data": {"sources": [{"format": "jsonl", "root": "$dir/synth", "annotations": "test_seen.jsonl"}]}}
JSON
  # The validation split as `data` (extract-features reads `data`).
  cat > "$dir/val-as-data.json" <<JSON
{"data": {"sources": [{"format": "jsonl", "root": "$dir/synth", "annotations": "val.jsonl"}]}}
JSON
}

# cache_features OUT DATA_DIR BRANCHES CONFIG_ARGS...: the frozen encoders' outputs for the
# training split (OUT/train) and the validation split (OUT/val), made once by extract-features
# with the model CONFIG_ARGS load; BRANCHES is "clip sam", "clip" or "sam". Kept when done.
cache_features() {
  local out=$1 data=$2 branches=$3
  shift 3
  if [[ -f "$out/done" ]]; then
    echo "[pipeline] $out: done earlier, kept"
    return
  fi
  rm -rf "$out"
  local start=$SECONDS flags=() b
  for b in $branches; do flags+=(--branch "$b"); done
  "$bin" extract-features "$@" --out "$out/train" "${flags[@]}" --batch-size 32
  "$bin" extract-features "$@" -c "$data/val-as-data.json" --out "$out/val" "${flags[@]}" --batch-size 32
  echo "$((SECONDS - start))" > "$out/done"
}

# leftover_prefixes: configs/weights/stage1-leftovers.json's allow_unexpected list, comma-joined
# (the stage-1 heads a stage-2 model does not have).
leftover_prefixes() {
  grep -o '"[^"]*"' configs/weights/stage1-leftovers.json | grep -v '^"load"$\|^"allow_unexpected"$' | paste -sd, -
}

# train_stage RUN_DIR CONFIG... [--set k=v]...: one `msmedcap train`, skipped when RUN_DIR
# already finished (a re-run of the script continues where it stopped).
train_stage() {
  local run=$1
  shift
  if [[ -f "$run/done" ]]; then
    echo "[pipeline] $run: done earlier, kept"
    return
  fi
  rm -rf "$run"
  local start=$SECONDS
  "$bin" train "$@" --set "train.precision=$(train_precision)" --run-dir "$run"
  echo "$((SECONDS - start))" > "$run/done"
}

# train_pipeline DATA_DIR RUN_ROOT VARIANT_CFG SEED [LM_RUN [ENCODER_ROOT]]: the stages for one
# model variant (encoder pretraining, decoder LM, stage 1 per branch, merge, stage 2, caption)
# (configs/demo/{dual,clip-only,sam-only}.json); the caption run is RUN_ROOT/caption. LM_RUN
# (default RUN_ROOT/decoder-lm) lets variants share one decoder LM, ENCODER_ROOT (default
# RUN_ROOT) their pretrained encoders (ENCODER_ROOT/{clip,sam}-pretrain): the encoders are
# pretrained in the dual model whatever the variant, so those of one seed are the same for all.
train_pipeline() {
  local data=$1 root=$2 variant=$3 seed=$4 lm=${5:-$2/decoder-lm} enc_root=${6:-$2}
  local base=(-c configs/demo/model.json -c "$variant" -c "$data/data.json" --set "runtime.seed=$seed"
              --set "loader.seed=$seed")
  local enc_base=(-c configs/demo/model.json -c configs/demo/dual.json -c "$data/data.json"
                  --set "runtime.seed=$seed" --set "loader.seed=$seed")
  local short=()
  if [[ -n ${BATCH_SIZE:-} ]]; then short+=(--set "loader.batch_size=$BATCH_SIZE"); fi
  if [[ -n ${WARMUP_STEPS:-} ]]; then short+=(--set "train.optimizer.warmup_steps=$WARMUP_STEPS"); fi
  local use_clip use_sam
  # (awk reads to the end: an early exit would end `config` with SIGPIPE, fatal under pipefail)
  use_clip=$("$bin" config "${base[@]}" | awk '/"use_clip"/ && !n++ { print ($2 ~ /true/) ? 1 : 0 }')
  use_sam=$("$bin" config "${base[@]}" | awk '/"use_sam"/ && !n++ { print ($2 ~ /true/) ? 1 : 0 }')
  mkdir -p "$root" "$enc_root"

  # The decoder learns the captions' language first: the paper's LLM is pretrained, ours starts
  # from random values.
  train_stage "$lm" "${base[@]}" -c configs/demo/decoder-lm.json \
    --set "train.epochs=$(stage_epochs 4)" "${short[@]}"

  # The paper's encoders were pretrained elsewhere (CLIP, SAM); ours are made from the training
  # data first, then frozen. Every later stage loads them before its own weights.
  local encoders=() leftovers='"clip_pretrain_projection.","sam_pretrain_decoder.","sam_pretrain_classes.","sam_pretrain_places."'
  # Everything but the two encoders (what an encoder-pretraining run does not hold).
  local beside_encoders='"query_tokens","qformer.","language_projection.","vision_projection.","text_projection.","itm_head.","temp","sam_query_tokens","sam_qformer.","sam_language_projection.","sam_vision_projection.","sam_text_projection.","sam_itm_head.","sam_temp","language_model."'
  local clip_init=() sam_init=()
  if [[ ${ENCODER_PRETRAIN:-1} == 1 && $use_clip == 1 ]]; then
    train_stage "$enc_root/clip-pretrain" "${enc_base[@]}" -c configs/demo/clip-pretrain.json \
      --set "train.epochs=$(stage_epochs 6)" "${short[@]}"
    encoders+=("{\"path\":\"$enc_root/clip-pretrain\"}")
    # Stage 1 starts from the pretrained ViT and the Q-Former's text path as CLIP trained it.
    clip_init=(--set "weights=[{\"path\":\"$enc_root/clip-pretrain\"}]" --set "load.allow_unexpected=[$leftovers]"
               --set 'load.allow_missing=["query_tokens","vision_projection.","itm_head.","language_projection.","sam_","language_model."]')
  fi
  if [[ ${ENCODER_PRETRAIN:-1} == 1 && $use_sam == 1 ]]; then
    train_stage "$enc_root/sam-pretrain" "${enc_base[@]}" -c configs/demo/sam-pretrain.json \
      --set "train.epochs=$(stage_epochs "${SAM_EPOCHS:-32}")" "${short[@]}"
    encoders+=("{\"path\":\"$enc_root/sam-pretrain\"}")
    sam_init=(--set "weights=[{\"path\":\"$enc_root/sam-pretrain\"}]" --set "load.allow_unexpected=[$leftovers]"
              --set "load.allow_missing=[\"vision_model.\",$beside_encoders]")
  fi
  local enc
  enc=$(IFS=,; echo "${encoders[*]}")

  # The encoders are frozen from here on: their outputs for every training and validation image
  # are computed once and the later stages read them instead of pixels (the same numbers up to
  # float16 rounding; FEATURE_CACHE=0 runs the encoders at every step instead).
  local cached=()
  if [[ ${FEATURE_CACHE:-1} == 1 ]]; then
    local branches=""
    if [[ $use_clip == 1 ]]; then branches+="clip "; fi
    if [[ $use_sam == 1 ]]; then branches+="sam"; fi
    cache_features "$root/features" "$data" "$branches" "${base[@]}" --set "weights=[$enc]" \
      --set "load.allow_unexpected=[$(leftover_prefixes),$leftovers]" \
      --set "load.allow_missing=[$beside_encoders]"
    cached=(--set "data.feature_cache=$root/features/train" --set "val_data.feature_cache=$root/features/val")
  fi

  # Stage 1: each Q-Former on its own (mixed semantic learning), then merged.
  local stage1=()
  if [[ $use_clip == 1 ]]; then
    train_stage "$root/stage1-clip" "${base[@]}" -c configs/stages/stage1-clip.json -c configs/demo/stage1.json \
      "${clip_init[@]}" "${cached[@]}" --set "train.epochs=$(stage_epochs 6)" "${short[@]}"
  fi
  if [[ $use_sam == 1 ]]; then
    train_stage "$root/stage1-sam" "${base[@]}" -c configs/stages/stage1-sam.json -c configs/demo/stage1.json \
      "${sam_init[@]}" "${cached[@]}" --set "train.epochs=$(stage_epochs 6)" "${short[@]}"
  fi
  if [[ $use_clip == 1 && $use_sam == 1 ]]; then
    "$bin" merge --clip "$root/stage1-clip" --sam "$root/stage1-sam" --out "$root/stage1.safetensors"
    stage1=("$root/stage1.safetensors")
  elif [[ $use_clip == 1 ]]; then
    stage1=("$root/stage1-clip")
  else
    stage1=("$root/stage1-sam")
  fi

  # Stage 2: both Q-Formers and projections against the frozen decoder; then caption
  # fine-tuning. The frozen encoders are the pretrained ones (loaded first, so the stage-1 and
  # stage-2 Q-Formers override the text path's); without pretraining, the seed's, as stage 1
  # drew them.
  local frozen='"vision_model.","sam_model."'
  train_stage "$root/stage2" "${base[@]}" -c configs/stages/stage2.json -c configs/demo/stage2.json \
    --set "weights=[${enc:+$enc,}{\"path\":\"${stage1[0]}\"},{\"path\":\"$lm\"}]" \
    --set "load.allow_unexpected=[$(leftover_prefixes),$leftovers]" \
    --set "load.allow_missing=[$frozen,\"language_projection.\",\"sam_language_projection.\"]" \
    "${cached[@]}" --set "train.epochs=$(stage_epochs 16)" "${short[@]}"
  train_stage "$root/caption" "${base[@]}" -c configs/stages/caption.json -c configs/demo/caption.json \
    --set "weights=[${enc:+$enc,}{\"path\":\"$root/stage2\"},{\"path\":\"$lm\"}]" \
    --set "load.allow_unexpected=[$(leftover_prefixes),$leftovers]" \
    --set "load.allow_missing=[$frozen]" \
    "${cached[@]}" --set "train.epochs=$(stage_epochs 24)" "${short[@]}"
}

# caption_and_score RUN DATA_DIR OUT_PREFIX [caption options...]: captions the test split and
# scores it (OUT_PREFIX.jsonl, OUT_PREFIX.eval.json; references in DATA_DIR/test-ref.jsonl).
caption_and_score() {
  local run=$1 data=$2 out=$3
  shift 3
  "$bin" caption --run "$run" -c "$data/test.json" --dataset val_data --out "$out.jsonl" \
    --references-out "$data/test-ref.jsonl" "$@"
  score_test "$data" "$out"
}

# score_test DATA_DIR PREFIX [SPLIT]: PREFIX.jsonl scored on SPLIT (default test; caption metrics
# and the synthetic benchmark's attribute metrics, overall and by size and finding) -> PREFIX.eval.json.
score_test() {
  local data=$1 out=$2 split=${3:-test}
  "$bin" evaluate --pred "$out.jsonl" --ref "$data/synth/$split.jsonl" --json "$out.eval.json" \
    --attributes configs/attributes/synthetic.json --by size --by finding > "$out.eval.txt"
}
