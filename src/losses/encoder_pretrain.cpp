#include "msmedcap/losses/encoder_pretrain.h"

#include <torch/torch.h>

#include <random>
#include <vector>

#include "msmedcap/core/check.h"
#include "msmedcap/losses/itc.h"

namespace msmedcap::losses {

namespace F = torch::nn::functional;

torch::Tensor clip_pretrain_loss(models::MsMedCapModelImpl& model, const models::ImageInputs& images,
                                 const torch::Tensor& text_ids, const torch::Tensor& text_mask,
                                 const Collectives& collectives) {
  MSMEDCAP_CHECK(!model.clip_pretrain_projection.is_empty(),
                 "clip_pretrain: the model has no clip_pretrain_projection (training::apply_stage adds it)");
  MSMEDCAP_CHECK(images.clip_pixels.defined() && !images.clip_features.defined(),
                 "clip_pretrain: trains the ViT, so it needs pixels (not data.feature_cache)");
  auto heads = model.heads(config::Branch::kClip);                // holders: copies share the modules
  const auto features = model.clip_features(images.clip_pixels);  // [B, N, Dv]
  const auto image =
      F::normalize(model.clip_pretrain_projection->forward(features.mean(1)), F::NormalizeFuncOptions().dim(-1));
  const auto text_out = model.qformer->encode_text(text_ids, text_mask);  // [B, T, D]
  const auto text = F::normalize(heads.text_projection(text_out.select(1, 0)), F::NormalizeFuncOptions().dim(-1));
  const auto identity = [](const torch::Tensor& t) { return t; };
  const auto gather = collectives.gather_with_grad ? collectives.gather_with_grad : identity;
  const auto image_q = image.unsqueeze(1);  // [B, 1, E]: one "query"
  return itc_loss(image_q, text, gather(image_q), gather(text), heads.temp, collectives.rank, 0.0).loss;
}

torch::Tensor sam_pretrain_loss(models::MsMedCapModelImpl& model, const models::ImageInputs& images,
                                const torch::Tensor& masks, uint64_t seed, int64_t points) {
  MSMEDCAP_CHECK(!model.sam_pretrain_decoder.is_empty(),
                 "sam_pretrain: the model has no sam_pretrain_decoder (training::apply_stage adds it)");
  MSMEDCAP_CHECK(images.sam_pixels.defined() && !images.sam_embeddings.defined(),
                 "sam_pretrain: trains the SAM ViT, so it needs pixels (not data.feature_cache)");
  MSMEDCAP_CHECK(masks.defined() && masks.dim() == 3 && masks.size(0) == images.sam_pixels.size(0),
                 "sam_pretrain: expected masks [B, S, S] for ", images.sam_pixels.size(0), " images, got ",
                 masks.defined() ? masks.sizes() : c10::IntArrayRef{});
  const int64_t b = masks.size(0), h = masks.size(1), w = masks.size(2);
  const auto ids = masks.to(torch::kLong).contiguous();
  const auto acc = ids.accessor<int64_t, 3>();
  auto where = torch::empty({b, points, 2}, torch::kFloat);
  auto target = torch::empty({b, points, h, w}, torch::kFloat);
  for (int64_t i = 0; i < b; ++i) {
    std::mt19937_64 rng(seed * 0x9e3779b97f4a7c15ull + static_cast<uint64_t>(i));
    std::vector<std::vector<int64_t>> pixels_of(256);  // structure id -> flat pixel indices
    for (int64_t y = 0; y < h; ++y)
      for (int64_t x = 0; x < w; ++x) {
        const int64_t id = acc[i][y][x];
        MSMEDCAP_CHECK(id >= 0 && id < 256, "sam_pretrain: mask id ", id, " outside 0..255");
        pixels_of[static_cast<size_t>(id)].push_back(y * w + x);
      }
    std::vector<int64_t> present;
    for (int64_t id = 1; id < 256; ++id)
      if (!pixels_of[static_cast<size_t>(id)].empty()) present.push_back(id);
    if (present.empty()) present.push_back(0);
    for (int64_t p = 0; p < points; ++p) {
      const int64_t id = present[rng() % present.size()];
      const auto& px = pixels_of[static_cast<size_t>(id)];
      const int64_t flat = px[rng() % px.size()];
      where[i][p][0] = (static_cast<double>(flat % w) + 0.5) / static_cast<double>(w);
      where[i][p][1] = (static_cast<double>(flat / w) + 0.5) / static_cast<double>(h);
      target[i][p].copy_(ids[i].eq(id).to(torch::kFloat));
    }
  }
  const auto embeddings = model.sam_embeddings(images.sam_pixels);  // [B, C, h', w']
  const auto device = embeddings.device();
  const auto logits = model.sam_pretrain_decoder(embeddings, where.to(device), h, w).to(torch::kFloat);
  const auto t = target.to(device);
  const auto bce = F::binary_cross_entropy_with_logits(logits, t);
  const auto prob = logits.sigmoid();
  const auto overlap = (prob * t).sum({2, 3}), total = prob.sum({2, 3}) + t.sum({2, 3});
  const auto dice = (1 - (2 * overlap + 1) / (total + 1)).mean();
  return bce + dice;
}

}  // namespace msmedcap::losses
