#include "msmedcap/inference/captioner.h"

#include <c10/core/InferenceMode.h>
#include <torch/nn/module.h>

#include <algorithm>
#include <cmath>

#include "msmedcap/core/check.h"
#include "msmedcap/models/token_grid.h"

namespace msmedcap::inference {
namespace {

/// Mean of the recorded probabilities over layers and queries: [B, M].
at::Tensor mean_attention(const models::CrossAttentionProbs& layers) {
  MSMEDCAP_CHECK(!layers.empty(), "attention maps: the Q-Former recorded no cross-attention");
  at::Tensor sum;
  for (const auto& probs : layers) {
    const auto m = probs.mean(1);  // [B, M]
    sum = sum.defined() ? sum + m : m;
  }
  return sum / static_cast<double>(layers.size());
}

}  // namespace

GenerateOptions generate_options(const config::GenerateConfig& g, const data::TextTokenizer& tokenizer,
                                 const std::string& eos_text) {
  if (g.eos_token_id != config::GenerateConfig::kEosFromText)
    return GenerateOptions::from_config(g, std::nullopt, tokenizer.pad_id());
  auto eos = tokenizer.encode(eos_text, false);
  if (eos.size() != 1) {
    // SentencePiece adds a dummy-prefix space to a text's start ("\n" -> "▁", <0x0A>): the end
    // token is what the end text adds after a word, as training tokenises it.
    if (const auto after = data::single_token_after_word(tokenizer, eos_text)) eos = {*after};
  }
  MSMEDCAP_CHECK(eos.size() == 1, "generation: the end text \"", eos_text, "\" is ", eos.size(),
                 " tokens for this tokenizer; set generate.eos_token_id");
  return GenerateOptions::from_config(g, eos[0], tokenizer.pad_id());
}

Captioner::Captioner(models::MsMedCapModel model, std::shared_ptr<const data::TextTokenizer> tokenizer,
                     CaptionOptions options)
    : model_(std::move(model)), tokenizer_(std::move(tokenizer)), options_(std::move(options)) {
  prompt_ids_ = tokenizer_->encode(options_.prompt, true);
  const int64_t vocab = model_->config().decoder.vocab_size;
  if (tokenizer_->vocab_size() < vocab) options_.generate.suppress_from = tokenizer_->vocab_size();
  for (int64_t id : prompt_ids_)
    MSMEDCAP_CHECK(id >= 0 && id < vocab, "caption: prompt token ", id, " outside the decoder's vocabulary of ", vocab);
  if (options_.generate.eos_token_id)
    MSMEDCAP_CHECK(*options_.generate.eos_token_id >= 0 && *options_.generate.eos_token_id < vocab,
                   "caption: eos_token_id ", *options_.generate.eos_token_id, " outside the decoder's vocabulary of ",
                   vocab, " (the generation settings are for another tokenizer)");
  MSMEDCAP_CHECK(!(options_.zero_prefix && options_.generate.guidance_scale != 1.0),
                 "caption: --zero-prefix with generate.guidance_scale ", options_.generate.guidance_scale,
                 ": the guidance's two prefixes would both be zeros; leave one out");
  model_->eval();
}

std::vector<Caption> Captioner::caption(models::ImageInputs inputs, BranchAttention* attention) {
  c10::InferenceMode no_grad;
  const auto device = model_->parameters().front().device();
  for (auto* t : {&inputs.clip_pixels, &inputs.sam_pixels, &inputs.clip_features, &inputs.sam_embeddings})
    if (t->defined()) *t = t->to(device);
  models::PrefixAttention probs;
  models::VisualPrefix visual = model_->encode(inputs, attention != nullptr ? &probs : nullptr);
  if (attention != nullptr) {
    const auto& cfg = model_->config();
    if (cfg.use_clip) {
      const auto a = mean_attention(probs.clip);  // [B, M]
      const auto grid = models::token_grid(a.size(1));
      MSMEDCAP_CHECK(grid.side > 0, "attention maps: ", a.size(1), " CLIP tokens are not a square grid");
      attention->clip = a.slice(1, grid.first).reshape({a.size(0), grid.side, grid.side}).cpu();
    }
    if (cfg.use_sam) {
      const auto a = mean_attention(probs.sam);           // [B, M]
      const auto& e = visual.parts.sam_image_embeddings;  // [B, C, h, w]
      if (cfg.sam_tokens == "channels") {
        attention->sam = (e.abs().to(at::kFloat) * a.view({a.size(0), a.size(1), 1, 1})).sum(1).cpu();
      } else {
        attention->sam = a.reshape({a.size(0), e.size(2), e.size(3)}).cpu();
      }
    }
  }
  const int64_t b = visual.embeds.size(0);
  if (options_.zero_prefix) visual.embeds = at::zeros_like(visual.embeds);
  const auto prompt =
      at::tensor(prompt_ids_, at::TensorOptions().dtype(at::kLong)).to(device).unsqueeze(0).expand({b, -1});
  const auto prompt_embeds = model_->decoder().embed(prompt).to(visual.embeds.dtype());
  const auto embeds = at::cat({visual.embeds, prompt_embeds}, 1);
  const auto mask = at::ones({b, embeds.size(1)}, at::TensorOptions().dtype(at::kLong).device(device));
  // Guidance's unconditional input: the same prompt after a zeroed visual prefix (what
  // --zero-prefix captions from).
  const auto unconditional = options_.generate.guidance_scale != 1.0
                                 ? at::cat({at::zeros_like(visual.embeds), prompt_embeds}, 1)
                                 : at::Tensor();
  const Generated out = generate(model_->decoder(), embeds, mask, options_.generate, unconditional);
  const auto tokens_cpu = out.tokens.to(at::kLong).cpu();
  const auto scores_cpu = out.scores.to(at::kDouble).cpu();
  const auto tokens = tokens_cpu.accessor<int64_t, 2>();
  const auto scores = scores_cpu.accessor<double, 1>();
  std::vector<Caption> captions(static_cast<size_t>(b));
  for (int64_t i = 0; i < b; ++i) {
    std::vector<int64_t> ids;
    for (int64_t t = 0; t < tokens.size(1); ++t) {
      const int64_t id = tokens[i][t];
      if (options_.generate.eos_token_id && id == *options_.generate.eos_token_id) break;
      ids.push_back(id);
    }
    std::string text = tokenizer_->decode(ids, true);
    const auto first = text.find_first_not_of(" \t\r\n");
    const auto last = text.find_last_not_of(" \t\r\n");
    captions[static_cast<size_t>(i)].text = first == std::string::npos ? "" : text.substr(first, last - first + 1);
    captions[static_cast<size_t>(i)].score = scores[i];
  }
  return captions;
}

}  // namespace msmedcap::inference
