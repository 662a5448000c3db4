#include "msmedcap/config/generate_config.h"

#include <cmath>

#include "msmedcap/config/config_io.h"
#include "msmedcap/core/check.h"

namespace msmedcap::config {

void GenerateConfig::validate(const std::string& path) const {
  MSMEDCAP_CHECK(max_new_tokens > 0, path, ".max_new_tokens: must be > 0, got ", max_new_tokens);
  MSMEDCAP_CHECK(min_new_tokens >= 0 && min_new_tokens <= max_new_tokens, path,
                 ".min_new_tokens: must be in [0, max_new_tokens], got ", min_new_tokens);
  MSMEDCAP_CHECK(num_beams >= 1, path, ".num_beams: must be >= 1, got ", num_beams);
  MSMEDCAP_CHECK(early_stopping == "false" || early_stopping == "true" || early_stopping == "never", path,
                 ".early_stopping: expected false, true or never, got '", early_stopping, "'");
  MSMEDCAP_CHECK(!(do_sample && num_beams > 1), path,
                 ".do_sample: sampling with num_beams > 1 (beam sampling) is not supported");
  MSMEDCAP_CHECK(temperature > 0, path, ".temperature: must be > 0, got ", temperature);
  MSMEDCAP_CHECK(top_k >= 0, path, ".top_k: must be >= 0, got ", top_k);
  MSMEDCAP_CHECK(top_p > 0 && top_p <= 1, path, ".top_p: must be in (0, 1], got ", top_p);
  MSMEDCAP_CHECK(seed >= 0, path, ".seed: must be >= 0, got ", seed);
  MSMEDCAP_CHECK(repetition_penalty > 0, path, ".repetition_penalty: must be > 0, got ", repetition_penalty);
  MSMEDCAP_CHECK(no_repeat_ngram_size >= 0, path, ".no_repeat_ngram_size: must be >= 0, got ", no_repeat_ngram_size);
  MSMEDCAP_CHECK(std::isfinite(guidance_scale) && guidance_scale >= 0, path,
                 ".guidance_scale: must be a finite number >= 0 (1 = off), got ", guidance_scale);
  MSMEDCAP_CHECK(eos_token_id >= kNoEos, path, ".eos_token_id: a token id, -1 (train.eos_text's) or -2 (none), got ",
                 eos_token_id);
  MSMEDCAP_CHECK(pad_token_id >= kPadFromTokenizer, path, ".pad_token_id: a token id or -1 (the tokenizer's), got ",
                 pad_token_id);
}

GenerateConfig GenerateConfig::from_hf_json(const Json& j, const std::string& origin) {
  MSMEDCAP_CHECK(j.is_object(), origin, ": generation settings must be a JSON object");
  GenerateConfig g;
  g.eos_token_id = kNoEos;  // HF: a file without eos_token_id stops at none
  g.pad_token_id = 1;       // HF's OPT default
  Json typed = j;
  if (typed.contains("early_stopping") && typed["early_stopping"].is_boolean())
    typed["early_stopping"] = typed["early_stopping"].get<bool>() ? "true" : "false";
  if (typed.contains("eos_token_id") && typed["eos_token_id"].is_null()) typed["eos_token_id"] = kNoEos;
  if (typed.contains("guidance_scale") && typed["guidance_scale"].is_null()) typed["guidance_scale"] = 1.0;
  from_json(typed, g, "", origin);
  g.validate(origin + ": generate");
  return g;
}

Json GenerateConfig::to_hf_json() const {
  Json j = to_json(*this);
  j["early_stopping"] = early_stopping == "never" ? Json("never") : Json(early_stopping == "true");
  if (eos_token_id == kNoEos) j["eos_token_id"] = nullptr;
  if (eos_token_id == kEosFromText) j.erase("eos_token_id");
  if (pad_token_id == kPadFromTokenizer) j.erase("pad_token_id");
  return j;
}

GenerateConfig read_generate_file(const std::string& path) {
  const Json j = read_json_file(path);
  if (j.is_object() && j.size() == 1 && j.contains("generate")) {
    GenerateConfig g;
    from_json(j["generate"], g, "generate", path);
    g.validate(path + ": generate");
    return g;
  }
  return GenerateConfig::from_hf_json(j, path);
}

}  // namespace msmedcap::config
