#pragma once
/// Decoding over a DecoderLM with a KV cache, as HF `generate` (transformers 4.36) does for
/// decoder-only models given `inputs_embeds`: greedy, beam search (BeamSearchScorer: length
/// penalty, early stopping true/false/"never") and sampling (temperature, top-k, top-p, seeded).
/// EOS finishes a row and finished rows emit the pad id. Logits processors: classifier-free
/// guidance (first, as HF orders it), repetition penalty, no-repeat n-gram and min_new_tokens over
/// the generated tokens.

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <optional>

#include "msmedcap/config/fields.h"
#include "msmedcap/config/generate_config.h"
#include "msmedcap/models/decoder.h"

namespace msmedcap::inference {

/// Generation settings with HF's names and meanings.
struct GenerateOptions {
  int64_t max_new_tokens = 30;
  int64_t min_new_tokens = 0;  ///< EOS is suppressed before this many new tokens
  int64_t num_beams = 1;
  /// Beam search: hypothesis score = sum of log-probabilities / length ** length_penalty.
  double length_penalty = 1.0;
  /// Beam search: 0 = false (stop when no beam can beat the worst kept hypothesis at its current
  /// length), 1 = true (stop at num_beams finished hypotheses), 2 = "never" (HF's names).
  int64_t early_stopping = 0;
  /// Sampling instead of argmax (one beam only), with HF's warpers in its order.
  bool do_sample = false;
  double temperature = 1.0;
  int64_t top_k = 50;  ///< 0 = off (HF's default is 50)
  double top_p = 1.0;
  uint64_t seed = 0;  ///< sampling generator seed
  double repetition_penalty = 1.0;
  int64_t no_repeat_ngram_size = 0;
  /// Classifier-free guidance, as HF's UnbatchedClassifierFreeGuidanceLogitsProcessor: the
  /// decoder also runs on an unconditional prefix (for a captioner, its visual prefix zeroed) fed
  /// the same tokens, and the next-token scores are s * (log p(cond) - log p(uncond)) +
  /// log p(uncond). 1 = off; 0 = the unconditional model alone.
  double guidance_scale = 1.0;
  std::optional<int64_t> eos_token_id;  ///< none = run to max_new_tokens
  /// Ids from this one up are never generated (HF's suppress_tokens over a range); 0 = off. The
  /// captioner sets it to the tokenizer's size when the decoder's vocabulary is larger (OPT's
  /// embedding has 50272 rows for 50265 tokens), so every generated id decodes. Not a JSON key.
  int64_t suppress_from = 0;
  int64_t pad_token_id = 1;

  /// The settings of a config's `generate` section. Its sentinels are resolved here:
  /// eos_token_id kEosFromText takes `eos_from_text` (throws when it is absent) and pad_token_id
  /// kPadFromTokenizer takes `tokenizer_pad` when >= 0, else the end token.
  static GenerateOptions from_config(const config::GenerateConfig& g,
                                     std::optional<int64_t> eos_from_text = std::nullopt, int64_t tokenizer_pad = -1);
  /// An HF-style object (config::GenerateConfig::from_hf_json: HF's keys and defaults; unknown
  /// keys and unsupported settings are errors naming `origin`).
  static GenerateOptions from_json(const config::Json& j, const std::string& origin);
};

/// Applies HF's RepetitionPenaltyLogitsProcessor and NoRepeatNGramLogitsProcessor in place.
/// scores: [B, V]; generated: [B, L] tokens produced so far (L may be 0).
void process_logits(at::Tensor& scores, const at::Tensor& generated, const GenerateOptions& options);

/// What generate() returns.
struct Generated {
  at::Tensor tokens;  ///< [B, max_new_tokens] new tokens, padded with pad_token_id after EOS
  at::Tensor scores;  ///< [B] beam search: the chosen hypothesis' score; otherwise the sum of the
                      ///< chosen tokens' log-probabilities (after the logits processors)
};

/// Greedy, beam search or sampling as `options` say. prefix: [B, P, E]; mask: [B, P] (left
/// padding allowed). unconditional: the guidance's prefix, shaped as `prefix` and masked by
/// `mask`; needed when options.guidance_scale != 1, ignored otherwise.
Generated generate(models::DecoderLM& lm, const at::Tensor& prefix, const at::Tensor& mask,
                   const GenerateOptions& options, const at::Tensor& unconditional = {});

/// HF's beam search (num_beams >= 1) over the prefix; see Generated and generate().
Generated beam_search(models::DecoderLM& lm, const at::Tensor& prefix, const at::Tensor& mask,
                      const GenerateOptions& options, const at::Tensor& unconditional = {});

/// Greedy decoding. prefix: [B, P, E] input embeddings (visual prefix and prompt); mask: [B, P]
/// (1 = token; left padding allowed). Returns the new tokens [B, max_new_tokens]; rows that
/// finished early are padded with pad_token_id.
at::Tensor greedy_search(models::DecoderLM& lm, const at::Tensor& prefix, const at::Tensor& mask,
                         const GenerateOptions& options);

}  // namespace msmedcap::inference
