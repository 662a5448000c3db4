#pragma once
/// Generation settings as a section of the run config (`generate`): HF's names and meanings,
/// layered with -c, overridden with --set, saved with a run. configs/generate/ holds presets
/// ({"generate": {...}}); an HF generation_config.json (a flat object, as `--generate FILE` and
/// model folders give) is read into the same section. Torch-free.

#include <cstdint>
#include <string>

#include "msmedcap/config/fields.h"

namespace msmedcap::config {

struct GenerateConfig {
  /// eos_token_id: the decoder tokenizer's token of train.eos_text (the default).
  static constexpr int64_t kEosFromText = -1;
  /// eos_token_id: no end token, every caption runs to max_new_tokens (HF's null).
  static constexpr int64_t kNoEos = -2;
  /// pad_token_id: the tokenizer's padding id, else the end token.
  static constexpr int64_t kPadFromTokenizer = -1;

  int64_t max_new_tokens = 30;
  int64_t min_new_tokens = 0;
  int64_t num_beams = 1;
  double length_penalty = 1.0;
  /// Beam search: "false" (stop when no beam can beat the worst kept hypothesis), "true" (stop at
  /// num_beams finished hypotheses) or "never" (HF's values; an HF file's booleans are read so).
  std::string early_stopping = "false";
  bool do_sample = false;
  double temperature = 1.0;
  int64_t top_k = 50;
  double top_p = 1.0;
  int64_t seed = 0;
  double repetition_penalty = 1.0;
  int64_t no_repeat_ngram_size = 0;
  /// Classifier-free guidance over the visual prefix (HF's guidance_scale): next-token
  /// log-probabilities s * (with image - without) + without; 1 = off (an HF file's null).
  double guidance_scale = 1.0;
  int64_t eos_token_id = kEosFromText;
  int64_t pad_token_id = kPadFromTokenizer;

  template <class V>
  void visit(V& v) {
    v("max_new_tokens", max_new_tokens, "tokens generated at most per caption");
    v("min_new_tokens", min_new_tokens, "the end token is suppressed before this many");
    v("num_beams", num_beams, "1 = greedy (or sampling), > 1 = beam search");
    v("length_penalty", length_penalty, "beam search: score = log-probability / length ** length_penalty");
    v("early_stopping", early_stopping, "beam search: false, true or never (HF's meanings)");
    v("do_sample", do_sample, "sample instead of argmax (one beam)");
    v("temperature", temperature, "sampling temperature");
    v("top_k", top_k, "sampling: keep the k most likely tokens; 0 = off");
    v("top_p", top_p, "sampling: nucleus probability mass");
    v("seed", seed, "sampling generator seed");
    v("repetition_penalty", repetition_penalty, "HF's repetition penalty; 1 = off");
    v("no_repeat_ngram_size", no_repeat_ngram_size, "ban repeating n-grams of this size; 0 = off");
    v("guidance_scale", guidance_scale,
      "classifier-free guidance against the zeroed visual prefix: s * (cond - uncond) + uncond; 1 = off");
    v("eos_token_id", eos_token_id, "end token id; -1 = train.eos_text's token, -2 = none");
    v("pad_token_id", pad_token_id, "padding after the end; -1 = the tokenizer's pad id, else the end token");
  }
  void validate(const std::string& path) const;

  /// An HF-style flat object (generation_config.json, --generate FILE): HF's keys, with
  /// early_stopping true/false/"never" and eos_token_id null = none. Keys it leaves out take HF's
  /// defaults, and an absent eos_token_id means none, as HF's generate reads such a file.
  /// Unknown keys are errors naming `origin`.
  static GenerateConfig from_hf_json(const Json& j, const std::string& origin);
  /// The HF-style object `from_hf_json` reads (what `export` writes as generation_config.json);
  /// eos_token_id / pad_token_id sentinels are left out.
  Json to_hf_json() const;
};

/// A generation file: a preset ({"generate": {...}}, its keys over the defaults) or an HF-style
/// flat object (from_hf_json).
GenerateConfig read_generate_file(const std::string& path);

}  // namespace msmedcap::config
