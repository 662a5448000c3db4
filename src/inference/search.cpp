#include "msmedcap/inference/search.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <torch/csrc/autograd/grad_mode.h>

#include <cmath>
#include <limits>
#include <map>
#include <set>
#include <vector>

#include "msmedcap/core/check.h"

namespace msmedcap::inference {

GenerateOptions GenerateOptions::from_config(const config::GenerateConfig& g, std::optional<int64_t> eos_from_text,
                                             int64_t tokenizer_pad) {
  g.validate("generate");
  GenerateOptions o;
  o.max_new_tokens = g.max_new_tokens;
  o.min_new_tokens = g.min_new_tokens;
  o.num_beams = g.num_beams;
  o.length_penalty = g.length_penalty;
  o.early_stopping = g.early_stopping == "never" ? 2 : g.early_stopping == "true" ? 1 : 0;
  o.do_sample = g.do_sample;
  o.temperature = g.temperature;
  o.top_k = g.top_k;
  o.top_p = g.top_p;
  o.seed = static_cast<uint64_t>(g.seed);
  o.repetition_penalty = g.repetition_penalty;
  o.no_repeat_ngram_size = g.no_repeat_ngram_size;
  o.guidance_scale = g.guidance_scale;
  if (g.eos_token_id == config::GenerateConfig::kEosFromText) {
    MSMEDCAP_CHECK(eos_from_text.has_value(),
                   "generate.eos_token_id: -1 (train.eos_text's token) needs the decoder "
                   "tokenizer; give an id, or -2 for none");
    o.eos_token_id = *eos_from_text;
  } else if (g.eos_token_id >= 0) {
    o.eos_token_id = g.eos_token_id;
  }
  if (g.pad_token_id >= 0) {
    o.pad_token_id = g.pad_token_id;
  } else {
    MSMEDCAP_CHECK(tokenizer_pad >= 0 || o.eos_token_id,
                   "generate.pad_token_id: -1 (the tokenizer's) needs a tokenizer "
                   "with a padding id or an end token; give an id");
    o.pad_token_id = tokenizer_pad >= 0 ? tokenizer_pad : *o.eos_token_id;
  }
  return o;
}

GenerateOptions GenerateOptions::from_json(const config::Json& j, const std::string& origin) {
  return from_config(config::GenerateConfig::from_hf_json(j, origin));
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
  if (options.suppress_from > 0 && options.suppress_from < scores.size(1))
    scores.slice(1, options.suppress_from).fill_(-std::numeric_limits<float>::infinity());
}

namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

/// Positions for left-padded rows: cumsum(mask) - 1, pads at 1 (HF prepare_inputs_for_generation);
/// none for families that derive them from the mask.
at::Tensor positions_for(models::DecoderLM& lm, const at::Tensor& mask, int64_t last) {
  if (lm.positions_from_mask()) return at::Tensor();
  auto pos = mask.cumsum(1) - 1;
  pos.masked_fill_(mask == 0, 1);
  return pos.slice(1, pos.size(1) - last);
}

/// The processors of every mode: repetition penalty, no-repeat n-gram, then min_new_tokens.
void process_all(at::Tensor& scores, const at::Tensor& generated, const GenerateOptions& options) {
  process_logits(scores, generated, options);
  if (options.eos_token_id && generated.size(1) < options.min_new_tokens) {
    scores.select(1, *options.eos_token_id).fill_(kNegInf);
  }
}

/// HF's warpers, in its order: temperature, top-k, top-p (each only when it changes anything).
void warp(at::Tensor& scores, const GenerateOptions& options) {
  if (options.temperature != 1.0) scores.div_(options.temperature);
  if (options.top_k > 0) {
    const int64_t k = std::min(options.top_k, scores.size(1));
    const auto kth = std::get<0>(scores.topk(k, -1)).select(1, k - 1).unsqueeze(1);
    scores.masked_fill_(scores < kth, kNegInf);
  }
  if (options.top_p < 1.0) {
    const auto sorted = scores.sort(-1, false);
    const auto cumulative = std::get<0>(sorted).softmax(-1).cumsum(-1);
    auto remove = cumulative <= (1.0 - options.top_p);
    remove.select(1, remove.size(1) - 1).fill_(false);  // keep at least one token
    scores.masked_fill_(remove.scatter(1, std::get<1>(sorted), remove), kNegInf);
  }
}

/// Classifier-free guidance's bookkeeping. With it on, the decoder runs on twice the rows: the
/// conditional ones first, then their unconditional twins, which are fed the same tokens.
struct Guidance {
  double scale = 1.0;
  bool on = false;

  static Guidance of(const GenerateOptions& options, const at::Tensor& prefix, const at::Tensor& unconditional) {
    Guidance g{options.guidance_scale, options.guidance_scale != 1.0};
    if (g.on) {
      MSMEDCAP_CHECK(unconditional.defined(), "generate: guidance_scale ", options.guidance_scale,
                     " needs an unconditional prefix (a captioner's visual prefix zeroed); this input has none");
      MSMEDCAP_CHECK(unconditional.sizes() == prefix.sizes(), "generate: the unconditional prefix ",
                     unconditional.sizes(), " must be shaped as the prefix ", prefix.sizes());
    }
    return g;
  }
  /// The prefill's input embeddings.
  at::Tensor inputs(const at::Tensor& prefix, const at::Tensor& unconditional) const {
    return on ? at::cat({prefix, unconditional.to(prefix.dtype())}) : prefix;
  }
  /// A per-row tensor of the conditional rows, for all the decoder's rows.
  at::Tensor twice(const at::Tensor& t) const { return on ? at::cat({t, t}) : t; }
  /// Indices into the n conditional rows, extended to their twins.
  at::Tensor rows(const at::Tensor& r, int64_t n) const { return on ? at::cat({r, r + n}) : r; }
  /// The next-token scores [R, V] from the decoder's last logits [R, V] (guidance off: as they
  /// are, or their log-probabilities when `log_probs`) or [2R, V] (on: HF's
  /// scale * (log p(cond) - log p(uncond)) + log p(uncond)).
  at::Tensor scores(const at::Tensor& last, bool log_probs) const {
    const auto l = last.to(at::kFloat);
    if (!on) return log_probs ? l.log_softmax(-1) : l.clone();
    const int64_t n = l.size(0) / 2;
    const auto cond = l.narrow(0, 0, n).log_softmax(-1), uncond = l.narrow(0, n, n).log_softmax(-1);
    return (cond - uncond) * scale + uncond;
  }
};

Generated greedy_or_sample(models::DecoderLM& lm, const at::Tensor& prefix, const at::Tensor& mask_in,
                           const GenerateOptions& options, const at::Tensor& unconditional) {
  torch::NoGradGuard no_grad;
  const int64_t batch = prefix.size(0);
  const Guidance guide = Guidance::of(options, prefix, unconditional);
  auto mask =
      mask_in.defined() ? mask_in.to(at::kLong) : at::ones({batch, prefix.size(1)}, prefix.options().dtype(at::kLong));
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(options.seed);
  models::KvCache cache;
  cache.reserve(prefix.size(1) + options.max_new_tokens);
  auto logits = lm.forward(guide.inputs(prefix, unconditional), guide.twice(mask),
                           positions_for(lm, guide.twice(mask), prefix.size(1)), &cache, 1);
  auto generated = at::empty({batch, 0}, mask.options());
  auto unfinished = at::ones({batch}, mask.options().dtype(at::kBool));
  auto total = at::zeros({batch}, at::kDouble);
  for (int64_t step = 0; step < options.max_new_tokens; ++step) {
    auto scores = guide.scores(logits.select(1, logits.size(1) - 1), false);  // [B, V]
    process_all(scores, generated, options);
    at::Tensor next;
    if (options.do_sample) {
      warp(scores, options);
      next = at::multinomial(scores.softmax(-1).to(at::kCPU), 1, false, gen).view({-1}).to(scores.device());
    } else {
      next = scores.argmax(-1);  // [B]
    }
    const auto logp = scores.log_softmax(-1).gather(1, next.unsqueeze(1)).squeeze(1).to(at::kCPU, at::kDouble);
    total += at::where(unfinished.to(at::kCPU), logp, at::zeros_like(logp));
    next = at::where(unfinished, next, at::full_like(next, options.pad_token_id));
    generated = at::cat({generated, next.unsqueeze(1)}, 1);
    if (options.eos_token_id) unfinished = unfinished & (next != *options.eos_token_id);
    if (!unfinished.any().item<bool>() || step + 1 == options.max_new_tokens) break;
    mask = at::cat({mask, at::ones({batch, 1}, mask.options())}, 1);
    const auto all = guide.twice(mask);
    logits =
        lm.forward(lm.embed(guide.twice(next).unsqueeze(1)).to(prefix.dtype()), all, positions_for(lm, all, 1), &cache);
  }
  if (generated.size(1) < options.max_new_tokens) {
    generated = at::cat({generated, at::full({batch, options.max_new_tokens - generated.size(1)}, options.pad_token_id,
                                             generated.options())},
                        1);
  }
  return {generated, total.to(at::kFloat)};
}

/// HF's BeamHypotheses: the best num_beams finished hypotheses of one batch row.
struct Hypotheses {
  int64_t num_beams;
  double length_penalty;
  int64_t early_stopping;
  int64_t max_length;
  std::vector<std::pair<double, std::vector<int64_t>>> beams;  // (score, tokens), insertion order
  double worst = 1e9;
  bool done = false;

  void add(std::vector<int64_t> tokens, double sum_logprobs, int64_t generated_len) {
    const double score = sum_logprobs / std::pow(static_cast<double>(generated_len), length_penalty);
    if (static_cast<int64_t>(beams.size()) < num_beams || score > worst) {
      beams.emplace_back(score, std::move(tokens));
      if (static_cast<int64_t>(beams.size()) > num_beams) {
        // Drop the worst (the first of the lowest scores, as Python's sort of (score, index)).
        size_t worst_at = 0;
        for (size_t i = 1; i < beams.size(); ++i) {
          if (beams[i].first < beams[worst_at].first) worst_at = i;
        }
        beams.erase(beams.begin() + static_cast<std::ptrdiff_t>(worst_at));
        worst = beams[0].first;
        for (const auto& b : beams) worst = std::min(worst, b.first);
      } else {
        worst = std::min(score, worst);
      }
    }
  }

  bool is_done(double best_sum_logprobs, int64_t cur_len) const {
    if (static_cast<int64_t>(beams.size()) < num_beams) return false;
    if (early_stopping == 1) return true;
    const int64_t len = early_stopping == 2 && length_penalty > 0 ? max_length : cur_len;
    return worst >= best_sum_logprobs / std::pow(static_cast<double>(len), length_penalty);
  }

  /// The best hypothesis: the highest score, the later one among equals (sorted() then pop()).
  const std::pair<double, std::vector<int64_t>>& best() const {
    size_t at = 0;
    for (size_t i = 1; i < beams.size(); ++i) {
      if (beams[i].first >= beams[at].first) at = i;
    }
    return beams[at];
  }
};

std::vector<int64_t> row_of(const at::Tensor& generated, int64_t row) {
  const auto r = generated[row].to(at::kCPU).contiguous();
  return std::vector<int64_t>(r.data_ptr<int64_t>(), r.data_ptr<int64_t>() + r.numel());
}

}  // namespace

Generated generate(models::DecoderLM& lm, const at::Tensor& prefix, const at::Tensor& mask,
                   const GenerateOptions& options, const at::Tensor& unconditional) {
  MSMEDCAP_CHECK(prefix.dim() == 3, "generate: prefix embeddings must be [B, P, E], got ", prefix.sizes());
  if (options.num_beams > 1) return beam_search(lm, prefix, mask, options, unconditional);
  return greedy_or_sample(lm, prefix, mask, options, unconditional);
}

at::Tensor greedy_search(models::DecoderLM& lm, const at::Tensor& prefix, const at::Tensor& mask,
                         const GenerateOptions& options) {
  MSMEDCAP_CHECK(prefix.dim() == 3, "generate: prefix embeddings must be [B, P, E], got ", prefix.sizes());
  GenerateOptions greedy = options;
  greedy.do_sample = false;
  return greedy_or_sample(lm, prefix, mask, greedy, {}).tokens;
}

Generated beam_search(models::DecoderLM& lm, const at::Tensor& prefix, const at::Tensor& mask_in,
                      const GenerateOptions& options, const at::Tensor& unconditional) {
  MSMEDCAP_CHECK(prefix.dim() == 3, "generate: prefix embeddings must be [B, P, E], got ", prefix.sizes());
  torch::NoGradGuard no_grad;
  const int64_t batch = prefix.size(0), beams = options.num_beams;
  const Guidance guide = Guidance::of(options, prefix, unconditional);
  const auto device = prefix.device();
  auto mask =
      mask_in.defined() ? mask_in.to(at::kLong) : at::ones({batch, prefix.size(1)}, prefix.options().dtype(at::kLong));
  // The K beams of a row share its prefix: run it once on B rows and repeat the cache and the
  // last logits, rather than running K copies (HF expands the inputs first; the result is the
  // same, at 1/K of the prefill's cost).
  models::KvCache cache;
  cache.reserve(prefix.size(1) + options.max_new_tokens);
  // With guidance the unconditional rows follow: [B*K conditional, B*K unconditional].
  auto logits = lm.forward(guide.inputs(prefix, unconditional), guide.twice(mask),
                           positions_for(lm, guide.twice(mask), prefix.size(1)), &cache, 1)
                    .repeat_interleave(beams, 0);  // [B*K, 1, V]
  cache.repeat_interleave(beams);
  mask = mask.repeat_interleave(beams, 0);
  // Only the first beam of each row starts live, so the first step does not pick K copies.
  auto beam_scores = at::zeros({batch, beams}, at::kFloat);
  beam_scores.slice(1, 1).fill_(-1e9);
  beam_scores = beam_scores.view({-1}).to(device);
  auto generated = at::empty({batch * beams, 0}, mask.options());
  std::vector<Hypotheses> hyps(
      static_cast<size_t>(batch),
      Hypotheses{beams, options.length_penalty, options.early_stopping, options.max_new_tokens, {}});
  for (int64_t step = 0; step < options.max_new_tokens; ++step) {
    auto scores = guide.scores(logits.select(1, logits.size(1) - 1), true);  // [B*K, V]
    process_all(scores, generated, options);
    const int64_t vocab = scores.size(1);
    const auto next_scores_all = (scores + beam_scores.unsqueeze(1)).view({batch, beams * vocab});
    const auto top = next_scores_all.topk(2 * beams, 1, true, true);
    const auto top_scores_cpu = std::get<0>(top).to(at::kCPU).contiguous();
    const auto top_ids_cpu = std::get<1>(top).to(at::kCPU).contiguous();
    const auto top_scores = top_scores_cpu.accessor<float, 2>();
    const auto top_ids = top_ids_cpu.accessor<int64_t, 2>();
    const int64_t cur_len = generated.size(1) + 1;
    std::vector<float> new_scores(static_cast<size_t>(batch * beams), 0.0f);
    std::vector<int64_t> new_tokens(static_cast<size_t>(batch * beams), options.pad_token_id);
    std::vector<int64_t> new_rows(static_cast<size_t>(batch * beams), 0);
    for (int64_t b = 0; b < batch; ++b) {
      auto& h = hyps[static_cast<size_t>(b)];
      if (h.done) continue;  // pad tokens, score 0, row 0 (HF)
      int64_t kept = 0;
      for (int64_t j = 0; j < 2 * beams && kept < beams; ++j) {
        const int64_t id = top_ids[b][j];
        const int64_t token = id % vocab, row = b * beams + id / vocab;
        const float score = top_scores[b][j];
        if (options.eos_token_id && token == *options.eos_token_id) {
          if (j >= beams) continue;  // an EOS below the top num_beams is not a hypothesis
          h.add(row_of(generated, row), score, cur_len);
        } else {
          const auto at = static_cast<size_t>(b * beams + kept);
          new_scores[at] = score;
          new_tokens[at] = token;
          new_rows[at] = row;
          ++kept;
        }
      }
      h.done = h.done || h.is_done(top_scores[b][0], cur_len);
    }
    const auto rows = at::tensor(new_rows, at::kLong).to(device);
    const auto tokens = at::tensor(new_tokens, at::kLong).to(device);
    beam_scores = at::tensor(new_scores, at::kFloat).to(device);
    generated = at::cat({generated.index_select(0, rows), tokens.unsqueeze(1)}, 1);
    bool all_done = true;
    for (const auto& h : hyps) all_done = all_done && h.done;
    if (all_done || cur_len == options.max_new_tokens) break;
    cache.select(guide.rows(rows, batch * beams));
    mask = at::cat({mask.index_select(0, rows), at::ones({batch * beams, 1}, mask.options())}, 1);
    const auto all = guide.twice(mask);
    logits = lm.forward(lm.embed(guide.twice(tokens).unsqueeze(1)).to(prefix.dtype()), all, positions_for(lm, all, 1),
                        &cache);
  }
  // Rows still open: their live beams become hypotheses (no EOS, full length).
  const auto final_scores = beam_scores.to(at::kCPU);
  auto out = at::full({batch, options.max_new_tokens}, options.pad_token_id, at::kLong);
  auto out_scores = at::zeros({batch}, at::kFloat);
  for (int64_t b = 0; b < batch; ++b) {
    auto& h = hyps[static_cast<size_t>(b)];
    if (!h.done) {
      for (int64_t k = 0; k < beams; ++k) {
        const int64_t row = b * beams + k;
        h.add(row_of(generated, row), final_scores[row].item<float>(), generated.size(1));
      }
    }
    const auto& best = h.best();
    const auto n = static_cast<int64_t>(best.second.size());
    for (int64_t t = 0; t < n; ++t) out[b][t] = best.second[static_cast<size_t>(t)];
    if (n < options.max_new_tokens && options.eos_token_id) out[b][n] = *options.eos_token_id;
    out_scores[b] = best.first;
  }
  return {out.to(device), out_scores.to(device)};
}

}  // namespace msmedcap::inference
