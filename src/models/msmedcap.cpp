#include "msmedcap/models/msmedcap.h"

#include <ATen/ATen.h>
#include <algorithm>
#include <cmath>
#include <torch/nn/functional/loss.h>

#include "msmedcap/core/check.h"

namespace msmedcap::models {

namespace F = torch::nn::functional;

MsMedCapModelImpl::MsMedCapModelImpl(const config::ModelConfig& cfg) : cfg_(cfg) {
  cfg.validate();
  language_model = build_decoder(cfg.decoder);
  const int64_t width = language_model->input_width();
  if (cfg.use_clip) {
    vision_model = register_module("vision_model", make_vision_model(cfg.vision));
    query_tokens = register_parameter("query_tokens",
                                      torch::randn({1, cfg.qformer.num_query_tokens, cfg.qformer.hidden_size}) * 0.02);
    qformer = register_module("qformer", QFormerModel(cfg.qformer));
    language_projection = register_module("language_projection", Linear(cfg.qformer.hidden_size, width));
    if (cfg.qformer.text_path) clip_heads_ = make_heads("", cfg.qformer.hidden_size);
  }
  if (cfg.use_sam) {
    sam_model = register_module("sam_model", SamModel(cfg.sam));
    sam_query_tokens = register_parameter(
        "sam_query_tokens", torch::randn({1, cfg.sam_qformer.num_query_tokens, cfg.sam_qformer.hidden_size}) * 0.02);
    sam_qformer = register_module("sam_qformer", QFormerModel(cfg.sam_qformer));
    sam_language_projection = register_module("sam_language_projection", Linear(cfg.sam_qformer.hidden_size, width));
    if (cfg.sam_qformer.text_path) sam_heads_ = make_heads("sam_", cfg.sam_qformer.hidden_size);
  }
  register_module("language_model", language_model);
}

MsMedCapModelImpl::Stage1Heads MsMedCapModelImpl::make_heads(const std::string& prefix, int64_t width) {
  Stage1Heads h;
  h.vision_projection = register_module(prefix + "vision_projection", Linear(width, cfg_.embed_dim));
  h.text_projection = register_module(prefix + "text_projection", Linear(width, cfg_.embed_dim));
  h.itm_head = register_module(prefix + "itm_head", Linear(width, 2));
  h.temp = register_parameter(prefix + "temp", torch::full({}, 0.07));  // LAVIS init, unclamped
  return h;
}

void MsMedCapModelImpl::add_encoder_pretrain_head(config::Branch branch, int64_t mask_classes, int64_t mask_places) {
  if (branch == config::Branch::kSam) {
    MSMEDCAP_CHECK(cfg_.use_sam, "model: the SAM branch is off");
    const auto w = sam_model->parameters().front();
    if (sam_pretrain_decoder.is_empty()) {
      sam_pretrain_decoder = register_module("sam_pretrain_decoder", PointMaskDecoder(cfg_.sam.output_channels));
      sam_pretrain_decoder->to(w.device());
    }
    if (mask_classes > 0 && sam_pretrain_classes.is_empty()) {
      sam_pretrain_classes = register_module("sam_pretrain_classes", Linear(cfg_.sam.output_channels, mask_classes));
      sam_pretrain_classes->to(w.device());
    }
    if (mask_places > 0 && sam_pretrain_places.is_empty()) {
      sam_pretrain_places = register_module("sam_pretrain_places", Linear(cfg_.sam.output_channels, mask_places));
      sam_pretrain_places->to(w.device());
    }
    return;
  }
  MSMEDCAP_CHECK(cfg_.use_clip, "model: the CLIP branch is off");
  if (!clip_pretrain_projection.is_empty()) return;
  const auto w = vision_model->parameters().front();
  clip_pretrain_projection =
      register_module("clip_pretrain_projection", Linear(cfg_.vision.hidden_size, cfg_.embed_dim));
  clip_pretrain_projection->to(w.device());
}

const MsMedCapModelImpl::Stage1Heads& MsMedCapModelImpl::heads(config::Branch branch) const {
  const auto& h = branch == config::Branch::kSam ? sam_heads_ : clip_heads_;
  MSMEDCAP_CHECK(!h.itm_head.is_empty(), "model: the ", config::branch_title(branch),
                 " branch has no stage-1 heads (set model.", config::branch_prefix(branch), "qformer.text_path)");
  return h;
}

QFormerModel MsMedCapModelImpl::qformer_of(config::Branch branch) const {
  return branch == config::Branch::kSam ? sam_qformer : qformer;
}

const torch::Tensor& MsMedCapModelImpl::query_tokens_of(config::Branch branch) const {
  return branch == config::Branch::kSam ? sam_query_tokens : query_tokens;
}

VisualPrefix MsMedCapModelImpl::encode_images(const torch::Tensor& pixel_values,
                                              const torch::Tensor& sam_pixel_values) {
  ImageInputs inputs;
  inputs.clip_pixels = pixel_values;
  inputs.sam_pixels = sam_pixel_values.defined() ? sam_pixel_values : pixel_values;
  return encode(inputs);
}

torch::Tensor MsMedCapModelImpl::clip_features(const torch::Tensor& pixel_values) {
  MSMEDCAP_CHECK(cfg_.use_clip, "model: the CLIP branch is off");
  return vision_model(pixel_values).features;
}

torch::Tensor MsMedCapModelImpl::sam_embeddings(const torch::Tensor& sam_pixel_values) {
  MSMEDCAP_CHECK(cfg_.use_sam, "model: the SAM branch is off");
  return sam_model->vision_encoder(sam_pixel_values);  // [B, C, h, w]
}

torch::Tensor MsMedCapModelImpl::image_tokens(config::Branch branch, const ImageInputs& inputs) {
  if (branch == config::Branch::kClip) {
    MSMEDCAP_CHECK(cfg_.use_clip, "model: the CLIP branch is off");
    // Each Q-Former reads its image in its own dtype (a frozen encoder may be stored in bf16).
    if (inputs.clip_features.defined()) return inputs.clip_features.to(query_tokens.dtype());
    MSMEDCAP_CHECK(inputs.clip_pixels.defined(), "model: the CLIP branch needs pixel_values");
    return vision_model(inputs.clip_pixels).features.to(query_tokens.dtype());
  }
  MSMEDCAP_CHECK(cfg_.use_sam, "model: the SAM branch is off");
  torch::Tensor image = inputs.sam_embeddings;  // [B, C, h, w]
  if (!image.defined()) {
    MSMEDCAP_CHECK(inputs.sam_pixels.defined(), "model: the SAM branch needs sam_pixel_values");
    image = sam_model->vision_encoder(inputs.sam_pixels);
  }
  return sam_tokens_of(image).to(sam_query_tokens.dtype());
}

torch::Tensor MsMedCapModelImpl::sam_tokens_of(const torch::Tensor& image) const {
  MSMEDCAP_CHECK(image.dim() == 4, "model: SAM embeddings must be [B, C, h, w], got ", image.sizes());
  const int64_t b = image.size(0), c = image.size(1);
  // MSMedCap feeds the C channels as tokens of h*w features; "spatial" is the ViT-style view.
  if (cfg_.sam_tokens == "channels") return image.reshape({b, c, -1});
  auto tokens = image.flatten(2).transpose(1, 2);  // [B, h*w, C]
  if (cfg_.sam_positions != "sine") return tokens;
  const int64_t h = image.size(2), w = image.size(3);
  if (!sam_positions_.defined() || sam_positions_.sizes() != c10::IntArrayRef{h, w, c} ||
      sam_positions_.device() != tokens.device() || sam_positions_.scalar_type() != tokens.scalar_type())
    sam_positions_ = grid_sine_positions(h, w, c).to(tokens.options()).view({h, w, c});
  return tokens + sam_positions_.view({1, h * w, c});
}

torch::Tensor grid_sine_positions(int64_t h, int64_t w, int64_t channels) {
  MSMEDCAP_CHECK(h > 0 && w > 0 && channels > 0 && channels % 4 == 0,
                 "grid_sine_positions: expected a grid and channels divisible by 4, got ", h, "x", w, " and ",
                 channels);
  const int64_t k = channels / 4;
  // Frequencies from half a period over the grid (its cosine tells the left half from the right)
  // to the grid's own resolution, geometrically spaced.
  const double top = std::max<double>(1.0, static_cast<double>(std::max(h, w)) / 2.0);
  auto freq = torch::empty({k}, torch::kDouble);
  for (int64_t i = 0; i < k; ++i)
    freq[i] = M_PI * std::pow(top, k > 1 ? static_cast<double>(i) / static_cast<double>(k - 1) : 0.0);
  const auto u = (torch::arange(w, torch::kDouble) + 0.5) / static_cast<double>(w);  // across
  const auto v = (torch::arange(h, torch::kDouble) + 0.5) / static_cast<double>(h);  // down
  const auto ux = torch::outer(u, freq).unsqueeze(0).expand({h, w, k});              // [h, w, k]
  const auto vy = torch::outer(v, freq).unsqueeze(1).expand({h, w, k});
  return torch::cat({ux.sin(), ux.cos(), vy.sin(), vy.cos()}, -1).reshape({h * w, channels}).to(torch::kFloat);
}

VisualPrefix MsMedCapModelImpl::encode(const ImageInputs& inputs, PrefixAttention* attention) {
  VisualPrefix prefix;
  std::vector<torch::Tensor> pieces;
  if (cfg_.use_clip) {
    torch::Tensor features = inputs.clip_features;  // [B, N, Dv]
    if (!features.defined()) {
      MSMEDCAP_CHECK(inputs.clip_pixels.defined(), "model: the CLIP branch needs pixel_values");
      const auto vision = vision_model(inputs.clip_pixels);
      prefix.parts.vision_embeddings_output = vision.embeddings;
      prefix.parts.vision_last_hidden_state = vision.last_hidden_state;
      prefix.parts.vision_pooler_output = vision.pooler_output;
      features = vision.features;
    }
    MSMEDCAP_CHECK(features.dim() == 3, "model: CLIP features must be [B, N, D], got ", features.sizes());
    const int64_t b = features.size(0);
    prefix.parts.qformer_last_hidden_state =
        qformer(query_tokens.expand({b, -1, -1}), features.to(query_tokens.dtype()), nullptr,
                attention != nullptr ? &attention->clip : nullptr);
    prefix.parts.language_projection = language_projection(prefix.parts.qformer_last_hidden_state);
    pieces.push_back(prefix.parts.language_projection);
  }
  if (cfg_.use_sam) {
    torch::Tensor image = inputs.sam_embeddings;  // [B, C, h, w]
    if (!image.defined()) {
      MSMEDCAP_CHECK(inputs.sam_pixels.defined(), "model: the SAM branch needs sam_pixel_values");
      image = sam_model->vision_encoder(inputs.sam_pixels);
    }
    const auto tokens = sam_tokens_of(image);
    prefix.parts.sam_image_embeddings = image;
    const int64_t b = image.size(0);
    prefix.parts.sam_qformer_last_hidden_state =
        sam_qformer(sam_query_tokens.expand({b, -1, -1}), tokens.to(sam_query_tokens.dtype()), nullptr,
                    attention != nullptr ? &attention->sam : nullptr);
    prefix.parts.sam_language_projection = sam_language_projection(prefix.parts.sam_qformer_last_hidden_state);
    pieces.push_back(prefix.parts.sam_language_projection);
  }
  for (auto& piece : pieces) piece = piece.to(pieces.front().dtype());
  prefix.embeds = torch::cat(pieces, 1);
  return prefix;
}

CaptionerOutput MsMedCapModelImpl::forward(const torch::Tensor& pixel_values, const torch::Tensor& sam_pixel_values,
                                           const torch::Tensor& input_ids, const torch::Tensor& attention_mask,
                                           const torch::Tensor& labels) {
  return forward_inputs(encode_images(pixel_values, sam_pixel_values), input_ids, attention_mask, labels);
}

namespace {
torch::Tensor checked_mask(const torch::Tensor& input_ids, const torch::Tensor& attention_mask) {
  MSMEDCAP_CHECK(input_ids.dim() == 2, "model: input_ids must be [B, T], got ", input_ids.sizes());
  const auto mask = attention_mask.defined() ? attention_mask : torch::ones_like(input_ids);
  MSMEDCAP_CHECK(mask.sizes() == input_ids.sizes(), "model: attention_mask ", mask.sizes(),
                 " does not match input_ids ", input_ids.sizes());
  return mask;
}
}  // namespace

std::pair<torch::Tensor, torch::Tensor> MsMedCapModelImpl::decoder_inputs(const VisualPrefix& prefix,
                                                                          const torch::Tensor& input_ids,
                                                                          const torch::Tensor& attention_mask,
                                                                          bool placeholders) {
  const auto text_mask = checked_mask(input_ids, attention_mask);
  const int64_t b = input_ids.size(0), p = prefix.embeds.size(1);
  MSMEDCAP_CHECK(prefix.embeds.size(0) == b, "model: ", prefix.embeds.size(0), " images but ", b, " token rows");
  const auto text = language_model->embed(input_ids);
  if (!placeholders) {
    const auto embeds = torch::cat({prefix.embeds.to(text.dtype()), text}, 1);
    return {embeds, torch::cat({torch::ones({b, p}, text_mask.options()), text_mask}, 1)};
  }
  // As HF Blip2 with image_token_index: the placeholders, in order, receive the prefix.
  const auto slots = input_ids == cfg_.image_token_index;  // [B, T]
  const auto per_row = slots.sum(1);
  for (int64_t r = 0; r < b; ++r) {
    const int64_t n = per_row[r].item<int64_t>();
    MSMEDCAP_CHECK(n == p, "model: input_ids row ", r, " has ", n, " image tokens (model.image_token_index ",
                   cfg_.image_token_index, "); the visual prefix has ", p, " positions");
  }
  const auto embeds = text.masked_scatter(slots.unsqueeze(-1).expand_as(text), prefix.embeds.to(text.dtype()));
  return {embeds, text_mask};
}

CaptionerOutput MsMedCapModelImpl::forward_inputs(const VisualPrefix& prefix, const torch::Tensor& input_ids,
                                                  const torch::Tensor& attention_mask, const torch::Tensor& labels) {
  return decode(prefix, input_ids, attention_mask, labels, 0, cfg_.image_token_index >= 0);
}

CaptionerOutput MsMedCapModelImpl::forward_text(const VisualPrefix& prefix, const torch::Tensor& input_ids,
                                                const torch::Tensor& attention_mask, const torch::Tensor& labels,
                                                int64_t logits_last) {
  return decode(prefix, input_ids, attention_mask, labels, logits_last, false);
}

CaptionerOutput MsMedCapModelImpl::decode(const VisualPrefix& prefix, const torch::Tensor& input_ids,
                                          const torch::Tensor& attention_mask, const torch::Tensor& labels,
                                          int64_t logits_last, bool placeholders) {
  const auto [embeds, mask] = decoder_inputs(prefix, input_ids, attention_mask, placeholders);
  const int64_t t = input_ids.size(1);
  CaptionerOutput out = prefix.parts;
  out.logits = language_model->forward(embeds, mask, {}, nullptr, logits_last);
  if (labels.defined()) {
    MSMEDCAP_CHECK(labels.sizes() == input_ids.sizes(), "model: labels ", labels.sizes(), " do not match input_ids ",
                   input_ids.sizes());
    MSMEDCAP_CHECK(out.logits.size(1) >= t, "model: labels need the logits of all ", t, " text positions, got ",
                   out.logits.size(1));
    // HF Blip2: the last T positions (all of them with placeholders), shifted by one.
    const int64_t end = out.logits.size(1);
    const auto shifted = out.logits.slice(1, end - t, end - 1);  // [B, T-1, V]
    const auto targets = labels.slice(1, 1);                     // [B, T-1]
    out.loss = F::cross_entropy(shifted.reshape({-1, shifted.size(-1)}).to(torch::kFloat), targets.reshape({-1}),
                                F::CrossEntropyFuncOptions().ignore_index(-100));
  }
  return out;
}

}  // namespace msmedcap::models
