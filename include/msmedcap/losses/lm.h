#pragma once
/// The decoder's captioning loss (docs/MODEL.md, "Stage 2: the decoder's loss") as LAVIS's Blip2OPT
/// computes it: next-token cross entropy over [visual prefix, text] with the prefix, the prompt and
/// the padding ignored, mean over the remaining tokens, no label smoothing. (HF's
/// Blip2ForConditionalGeneration never predicts the first text token from the last query; LAVIS
/// does. The difference is one token per caption.)

#include <cstdint>
#include <vector>

#include <torch/types.h>

#include "msmedcap/models/msmedcap.h"

namespace msmedcap::losses {

/// Targets [B, P + T] for text ids [B, T] after a prefix of P positions: -100 over the prefix,
/// over each row's first prompt_lengths[b] text tokens (e.g. "</s>a photo of"), over padding and,
/// when `unscored` [B, T] (bool) is defined, over the tokens it marks.
torch::Tensor lm_targets(const torch::Tensor& ids, const torch::Tensor& mask, int64_t prefix,
                         const std::vector<int64_t>& prompt_lengths = {}, const torch::Tensor& unscored = {});

/// Mean next-token cross entropy of logits [B, P + T, V] against lm_targets().
torch::Tensor lm_loss(const torch::Tensor& logits, const torch::Tensor& targets);

/// Word dropout: `ids` [B, T] with each caption token (mask 1, past the first token and past the
/// row's prompt_lengths[b] prompt tokens) replaced by `replacement` with probability `p`, drawn
/// from (seed, keys[b], position): the same on any number of processes and on resume.
torch::Tensor drop_words(const torch::Tensor& ids, const torch::Tensor& mask,
                         const std::vector<int64_t>& prompt_lengths, double p, int64_t replacement, uint64_t seed,
                         const std::vector<int64_t>& keys);

/// The captioning loss of `model` on text ids/mask [B, T] after a visual prefix (null: the
/// decoder alone on the text, stage decoder_lm), with each row's first prompt_lengths[b] tokens
/// unscored. Equal to lm_loss over logits of every position, but the LM head runs on the last
/// prefix position and the text only: the other prefix positions predict nothing the loss reads.
/// `inputs` (defined: [B, T], e.g. drop_words of ids) is what the decoder reads; the targets stay ids.
/// `unscored` (defined: [B, T] bool) leaves those tokens out of the loss (lm_targets).
torch::Tensor caption_loss(models::MsMedCapModelImpl& model, const models::VisualPrefix* prefix,
                           const torch::Tensor& ids, const torch::Tensor& mask,
                           const std::vector<int64_t>& prompt_lengths = {}, const torch::Tensor& inputs = {},
                           const torch::Tensor& unscored = {});

}  // namespace msmedcap::losses
