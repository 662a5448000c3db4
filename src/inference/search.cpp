#include "msmedcap/inference/search.h"

#include <ATen/ATen.h>
#include <torch/csrc/autograd/grad_mode.h>

#include <limits>
#include <map>
#include <set>
#include <vector>

#include "msmedcap/core/check.h"

namespace msmedcap::inference {

GenerateOptions GenerateOptions::from_json(const config::Json& j, const std::string& origin) {
  MSMEDCAP_CHECK(j.is_object(), origin, ": generation settings must be a JSON object");
  GenerateOptions o;
  for (const auto& item : j.items()) {
    const std::string& key = item.key();
    const auto& v = item.value();
    auto integer = [&]() {
      MSMEDCAP_CHECK(v.is_number_integer(), origin, ": ", key, " must be an integer, got ", v.dump());
      return v.get<int64_t>();
    };
    auto number = [&]() {
      MSMEDCAP_CHECK(v.is_number(), origin, ": ", key, " must be a number, got ", v.dump());
      return v.get<double>();
    };
    if (key == "max_new_tokens") {
      o.max_new_tokens = integer();
    } else if (key == "min_new_tokens") {
      o.min_new_tokens = integer();
    } else if (key == "num_beams") {
      o.num_beams = integer();
    } else if (key == "repetition_penalty") {
      o.repetition_penalty = number();
    } else if (key == "no_repeat_ngram_size") {
      o.no_repeat_ngram_size = integer();
    } else if (key == "eos_token_id") {
      if (v.is_null()) {
        o.eos_token_id.reset();
      } else {
        o.eos_token_id = integer();
      }
    } else if (key == "pad_token_id") {
      o.pad_token_id = integer();
    } else if (key == "do_sample") {
      MSMEDCAP_CHECK(v.is_boolean(), origin, ": do_sample must be true or false");
      MSMEDCAP_CHECK(!v.get<bool>(), origin, ": do_sample=true (sampling) is not implemented yet");
    } else if (key == "length_penalty" || key == "early_stopping" || key == "temperature" ||
               key == "top_p" || key == "top_k") {
      // Only meaningful for beam search / sampling, which reject themselves below.
    } else {
      const std::vector<std::string> known = {"max_new_tokens", "min_new_tokens", "num_beams",
                                              "repetition_penalty", "no_repeat_ngram_size",
                                              "eos_token_id", "pad_token_id", "do_sample"};
      const std::string hint = config::nearest_key(key, known);
      MSMEDCAP_FAIL(origin, ": unknown generation key '", key, "'",
                    hint.empty() ? "" : " (did you mean '" + hint + "'?)");
    }
  }
  MSMEDCAP_CHECK(o.max_new_tokens > 0, origin, ": max_new_tokens must be > 0");
  MSMEDCAP_CHECK(o.repetition_penalty > 0, origin, ": repetition_penalty must be > 0");
  MSMEDCAP_CHECK(o.num_beams == 1, origin, ": num_beams=", o.num_beams,
                 ": beam search is not implemented yet (greedy only)");
  return o;
}

void process_logits(at::Tensor& scores, const at::Tensor& generated, const GenerateOptions& options) {
  const int64_t length = generated.size(1);
  if (options.repetition_penalty != 1.0 && length > 0) {
    // HF RepetitionPenaltyLogitsProcessor: divide positive, multiply negative scores.
    auto seen = scores.gather(1, generated);
    seen = at::where(seen < 0, seen * options.repetition_penalty, seen / options.repetition_penalty);
    scores.scatter_(1, generated, seen);
  }
  const int64_t n = options.no_repeat_ngram_size;
  if (n > 0 && length + 1 >= n) {
    // HF NoRepeatNGramLogitsProcessor: ban tokens that would complete an n-gram seen before.
    const auto tokens = generated.to(at::kCPU).contiguous();
    const auto* data = tokens.data_ptr<int64_t>();
    for (int64_t b = 0; b < tokens.size(0); ++b) {
      const int64_t* row = data + b * length;
      for (int64_t start = 0; start + n <= length; ++start) {
        bool match = true;
        for (int64_t k = 0; k < n - 1 && match; ++k) match = row[start + k] == row[length - n + 1 + k];
        if (match) scores[b][row[start + n - 1]] = -std::numeric_limits<float>::infinity();
      }
    }
  }
}

at::Tensor greedy_search(models::DecoderLM& lm, const at::Tensor& prefix, const at::Tensor& mask_in,
                         const GenerateOptions& options) {
  MSMEDCAP_CHECK(prefix.dim() == 3, "generate: prefix embeddings must be [B, P, E], got ", prefix.sizes());
  torch::NoGradGuard no_grad;
  const int64_t batch = prefix.size(0);
  auto mask = mask_in.defined() ? mask_in.to(at::kLong)
                                : at::ones({batch, prefix.size(1)}, prefix.options().dtype(at::kLong));
  // Positions for left-padded rows: cumsum(mask) - 1, pads at 1 (HF prepare_inputs_for_generation).
  auto positions_for = [&lm](const at::Tensor& m, int64_t last) {
    if (lm.positions_from_mask()) return at::Tensor();
    auto pos = m.cumsum(1) - 1;
    pos.masked_fill_(m == 0, 1);
    return pos.slice(1, pos.size(1) - last);
  };
  models::KvCache cache;
  auto logits = lm.forward(prefix, mask, positions_for(mask, prefix.size(1)), &cache);
  auto generated = at::empty({batch, 0}, mask.options());
  auto unfinished = at::ones({batch}, mask.options().dtype(at::kBool));
  for (int64_t step = 0; step < options.max_new_tokens; ++step) {
    auto scores = logits.select(1, logits.size(1) - 1).to(at::kFloat).clone();  // [B, V]
    process_logits(scores, generated, options);
    if (options.eos_token_id && step < options.min_new_tokens) {
      scores.select(1, *options.eos_token_id).fill_(-std::numeric_limits<float>::infinity());
    }
    auto next = scores.argmax(-1);  // [B]
    next = at::where(unfinished, next, at::full_like(next, options.pad_token_id));
    generated = at::cat({generated, next.unsqueeze(1)}, 1);
    if (options.eos_token_id) unfinished = unfinished & (next != *options.eos_token_id);
    if (!unfinished.any().item<bool>() || step + 1 == options.max_new_tokens) break;
    mask = at::cat({mask, at::ones({batch, 1}, mask.options())}, 1);
    logits = lm.forward(lm.embed(next.unsqueeze(1)).to(prefix.dtype()), mask, positions_for(mask, 1), &cache);
  }
  if (generated.size(1) < options.max_new_tokens) {
    generated = at::cat({generated, at::full({batch, options.max_new_tokens - generated.size(1)},
                                             options.pad_token_id, generated.options())}, 1);
  }
  return generated;
}

}  // namespace msmedcap::inference
