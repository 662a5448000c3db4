#pragma once
/// Captions to padded id tensors for training: the Q-Former's WordPiece text (stage 1) and the
/// decoder's prompt + caption + end text (stage 2, LAVIS Blip2OPT.forward, docs/MODEL.md, "Stage 2:
/// the decoder's loss"), right-padded to the longest row.

#include <cstdint>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>

#include "msmedcap/data/tokenizer.h"

namespace msmedcap::data {

struct TextBatch {
  at::Tensor ids;   // [B, T] int64, right-padded with the tokenizer's pad id (0 if it has none)
  at::Tensor mask;  // [B, T] int64, 1 on tokens
  /// Decoder batches: leading tokens of each row that belong to the prompt (bos included);
  /// 0 without a prompt.
  std::vector<int64_t> prompt_lengths;
};

/// WordPiece [CLS] text [SEP] per text, cut to `max_len` tokens keeping the final [SEP] (HF
/// truncation=True, max_length=max_len).
TextBatch qformer_text_batch(const TextTokenizer& tokenizer, const std::vector<std::string>& texts, int64_t max_len);

/// The decoder's input per text: tokenizer(prompt + text + eos_text) with its special tokens
/// (OPT's leading </s>), cut to `max_len` tokens from the right.
TextBatch decoder_text_batch(const TextTokenizer& tokenizer, const std::vector<std::string>& texts,
                             const std::string& prompt, const std::string& eos_text, int64_t max_len);

}  // namespace msmedcap::data
