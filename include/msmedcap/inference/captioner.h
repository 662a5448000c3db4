#pragma once
/// Captioning images with a trained model, as LAVIS's Blip2OPT.generate does: the visual prefix
/// of both branches, then the tokenised prompt (the decoder's bos included), then generate();
/// the text is decoded up to the end token. Optionally records each branch's Q-Former
/// cross-attention for attention maps.

#include <ATen/core/Tensor.h>

#include <memory>
#include <string>
#include <vector>

#include "msmedcap/data/tokenizer.h"
#include "msmedcap/inference/search.h"
#include "msmedcap/models/msmedcap.h"

namespace msmedcap::inference {

struct CaptionOptions {
  GenerateOptions generate;
  /// Text before the caption ("a photo of "); empty = the bos token only.
  std::string prompt;
  /// Record the Q-Former cross-attention of both branches (attention maps).
  bool attention = false;
  /// The language-prior baseline: the visual prefix is replaced by zeros of its shape (the
  /// decoder sees as many prefix positions as in training, none of them from the image).
  bool zero_prefix = false;
};

/// A run config's `generate` section for `tokenizer`: eos_token_id -1 (the default) is the
/// single token of `eos_text` (OPT's "\n" as BLIP-2 trains it; throws when it is not one token),
/// pad_token_id -1 the tokenizer's pad id. The defaults are greedy decoding of up to 30 tokens.
GenerateOptions generate_options(const config::GenerateConfig& g, const data::TextTokenizer& tokenizer,
                                 const std::string& eos_text);

struct Caption {
  std::string text;
  double score = 0;  ///< generate()'s score: beam score, or the summed log-probabilities
};

/// Where each branch's queries looked, averaged over cross-attention layers, heads and queries.
struct BranchAttention {
  /// [B, g, g] over the CLIP patch grid (the class token dropped); undefined without CLIP.
  at::Tensor clip;
  /// [B, h, w] over the SAM embedding grid: the attention itself for spatial tokens; for
  /// channel tokens (MSMedCap) the channel maps' magnitudes weighted by the attention each
  /// channel received. Undefined without SAM.
  at::Tensor sam;
};

class Captioner {
 public:
  Captioner(models::MsMedCapModel model, std::shared_ptr<const data::TextTokenizer> tokenizer, CaptionOptions options);

  /// Captions a batch from each branch's pixels (clip [B, 3, S, S], sam [B, 3, T, T]) or the
  /// frozen encoders' cached outputs (`extract-features`); a branch that is off has neither. Any
  /// device (moved to the model's). Fills `attention` when asked for.
  std::vector<Caption> caption(models::ImageInputs inputs, BranchAttention* attention = nullptr);

  const CaptionOptions& options() const { return options_; }

 private:
  models::MsMedCapModel model_;
  std::shared_ptr<const data::TextTokenizer> tokenizer_;
  CaptionOptions options_;
  std::vector<int64_t> prompt_ids_;
};

}  // namespace msmedcap::inference
