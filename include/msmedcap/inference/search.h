#pragma once
/// Decoding over a DecoderLM with a KV cache, as HF `generate` does for decoder-only models
/// given `inputs_embeds`: the processed logits of the last position pick the next token, which
/// is embedded and fed back; EOS finishes a row and finished rows emit the pad id.
/// Logits processors: repetition penalty and no-repeat n-gram over the generated tokens.

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <optional>

#include "msmedcap/config/fields.h"
#include "msmedcap/models/decoder.h"

namespace msmedcap::inference {

/// Generation settings with HF's names and meanings.
struct GenerateOptions {
  int64_t max_new_tokens = 30;
  int64_t min_new_tokens = 0;     ///< EOS is suppressed before this many new tokens
  int64_t num_beams = 1;
  double repetition_penalty = 1.0;
  int64_t no_repeat_ngram_size = 0;
  std::optional<int64_t> eos_token_id;  ///< none = run to max_new_tokens
  int64_t pad_token_id = 1;

  /// Reads HF-style keys (max_new_tokens, min_new_tokens, num_beams, repetition_penalty,
  /// no_repeat_ngram_size, eos_token_id (null = none), pad_token_id, do_sample); unknown keys
  /// and unsupported settings are errors naming `origin`.
  static GenerateOptions from_json(const config::Json& j, const std::string& origin);
};

/// Applies HF's RepetitionPenaltyLogitsProcessor and NoRepeatNGramLogitsProcessor in place.
/// scores: [B, V]; generated: [B, L] tokens produced so far (L may be 0).
void process_logits(at::Tensor& scores, const at::Tensor& generated, const GenerateOptions& options);

/// Greedy decoding. prefix: [B, P, E] input embeddings (visual prefix and prompt); mask: [B, P]
/// (1 = token; left padding allowed). Returns the new tokens [B, max_new_tokens]; rows that
/// finished early are padded with pad_token_id.
at::Tensor greedy_search(models::DecoderLM& lm, const at::Tensor& prefix, const at::Tensor& mask,
                         const GenerateOptions& options);

}  // namespace msmedcap::inference
