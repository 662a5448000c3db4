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

namespace {

/// A per-position linear head on the embeddings [B, C, h', w']: logits [B, K, h', w'], float.
torch::Tensor per_position(models::Linear head, const torch::Tensor& embeddings) {
  const auto x = embeddings.to(head->weight.dtype());
  return head(x.permute({0, 2, 3, 1})).permute({0, 3, 1, 2}).to(torch::kFloat);
}

/// The mean of `ce` [B, h', w'] over each image's marked positions `fg` (float), then over the
/// images with any: a one-position nodule weighs as much as an effusion over thirty.
torch::Tensor marked_mean(const torch::Tensor& ce, const torch::Tensor& fg) {
  const auto fg_count = fg.sum({1, 2});                      // [B]
  const auto with_marks = fg_count.gt(0).to(torch::kFloat);  // [B]
  const auto per_image = (ce * fg).sum({1, 2}) / fg_count.clamp_min(1);
  return (per_image * with_marks).sum() / with_marks.sum().clamp_min(1);
}

/// The per-pixel class loss and what it reads per image (MaskClassTargets); `marked` [B, h', w']
/// the positions of a structure with id >= first_id.
std::pair<torch::Tensor, double> mask_class_loss(models::MsMedCapModelImpl& model, const torch::Tensor& embeddings,
                                                 const torch::Tensor& marked, const MaskClassTargets& targets) {
  MSMEDCAP_CHECK(!model.sam_pretrain_classes.is_empty(),
                 "sam_pretrain: the model has no sam_pretrain_classes (training::apply_stage adds it)");
  const int64_t b = marked.size(0);
  MSMEDCAP_CHECK(targets.classes.defined() && targets.classes.dim() == 1 && targets.classes.size(0) == b,
                 "sam_pretrain: expected one class per image [", b, "], got ",
                 targets.classes.defined() ? targets.classes.sizes() : c10::IntArrayRef{});
  const auto device = embeddings.device();
  const int64_t gh = embeddings.size(2), gw = embeddings.size(3);
  const auto logits = per_position(model.sam_pretrain_classes, embeddings);            // [B, K, h', w']
  const auto row_class = targets.classes.to(torch::kLong).to(device).view({b, 1, 1});  // [B, 1, 1]
  const auto target = torch::where(marked, row_class.expand({b, gh, gw}), torch::zeros_like(row_class));
  const auto ce = F::cross_entropy(logits, target, F::CrossEntropyFuncOptions().reduction(torch::kNone));
  const auto fg = marked.to(torch::kFloat), bg = 1 - fg;
  auto loss = (ce * bg).sum() / bg.sum().clamp_min(1);
  if (fg.sum().item<double>() > 0) loss = 0.5 * (loss + marked_mean(ce, fg));
  // Per image with marked positions of a class: the class of the largest probability mass.
  torch::NoGradGuard no_grad;
  const auto mass = logits.softmax(1).narrow(1, 1, logits.size(1) - 1).sum({2, 3});  // [B, K-1]
  const auto read = std::get<1>(mass.max(1)) + 1;
  const auto counted = marked.flatten(1).any(1).logical_and(row_class.view({b}).gt(0));
  const double n = counted.sum().item<double>();
  const double right = read.eq(row_class.view({b})).logical_and(counted).sum().item<double>();
  return {loss, n > 0 ? right / n : 0.0};
}

/// The place loss (MaskClassTargets::places): which grid cell each marked position lies in.
torch::Tensor mask_place_loss(models::MsMedCapModelImpl& model, const torch::Tensor& embeddings,
                              const torch::Tensor& marked, const MaskClassTargets& targets) {
  MSMEDCAP_CHECK(!model.sam_pretrain_places.is_empty(),
                 "sam_pretrain: the model has no sam_pretrain_places (training::apply_stage adds it)");
  const int64_t b = marked.size(0), gh = marked.size(1), gw = marked.size(2);
  const int64_t columns = targets.places[0], rows = targets.places[1];
  const auto logits = per_position(model.sam_pretrain_places, embeddings);  // [B, cells, h', w']
  MSMEDCAP_CHECK(logits.size(1) == columns * rows, "sam_pretrain: sam_pretrain_places has ", logits.size(1),
                 " cells, mask_classes.places ", columns, " x ", rows);
  const auto options = torch::TensorOptions().dtype(torch::kLong).device(marked.device());
  const auto column = torch::arange(gw, options).mul(columns).div(gw, "floor");  // [w']
  const auto row = torch::arange(gh, options).mul(rows).div(gh, "floor");        // [h']
  const auto cell = (row.view({gh, 1}) * columns + column.view({1, gw})).expand({b, gh, gw});
  const auto ce = F::cross_entropy(logits, cell, F::CrossEntropyFuncOptions().reduction(torch::kNone));
  return marked_mean(ce, marked.to(torch::kFloat));
}

}  // namespace

int square_turn(uint64_t seed, int64_t row, int turns) {
  MSMEDCAP_CHECK(turns >= 0 && turns < 8, "square_turn: expected turn bits 0..7, got ", turns);
  std::mt19937_64 rng(~(seed * 0x9e3779b97f4a7c15ull + static_cast<uint64_t>(row)));
  return static_cast<int>(rng() % 8) & turns;
}

torch::Tensor turn_square(const torch::Tensor& x, int code) {
  MSMEDCAP_CHECK(code >= 0 && code < 8 && x.dim() >= 2 && x.size(-1) == x.size(-2),
                 "turn_square: expected a code 0..7 and a square [..., S, S], got ", code, " and ", x.sizes());
  auto r = x;
  if (code & 1) r = r.flip({-1});
  if (code & 2) r = r.flip({-2});
  if (code & 4) r = r.transpose(-1, -2);
  return r;
}

SamPretrainLoss sam_pretrain_loss(models::MsMedCapModelImpl& model, const models::ImageInputs& images,
                                  const torch::Tensor& masks, uint64_t seed, const SamPretrainOptions& options) {
  const int64_t points = options.points;
  MSMEDCAP_CHECK(points >= 1, "sam_pretrain: points must be >= 1, got ", points);
  MSMEDCAP_CHECK(!model.sam_pretrain_decoder.is_empty(),
                 "sam_pretrain: the model has no sam_pretrain_decoder (training::apply_stage adds it)");
  MSMEDCAP_CHECK(images.sam_pixels.defined() && !images.sam_embeddings.defined(),
                 "sam_pretrain: trains the SAM ViT, so it needs pixels (not data.feature_cache)");
  MSMEDCAP_CHECK(masks.defined() && masks.dim() == 3 && masks.size(0) == images.sam_pixels.size(0),
                 "sam_pretrain: expected masks [B, S, S] for ", images.sam_pixels.size(0), " images, got ",
                 masks.defined() ? masks.sizes() : c10::IntArrayRef{});
  const int64_t b = masks.size(0), h = masks.size(1), w = masks.size(2);
  auto ids = masks.to(torch::kLong).contiguous();
  auto pixels = images.sam_pixels;
  if (options.turns != 0) {
    MSMEDCAP_CHECK(h == w, "sam_pretrain: the square's symmetries need square masks, got ", h, "x", w);
    std::vector<torch::Tensor> turned_ids, turned_pixels;
    for (int64_t i = 0; i < b; ++i) {
      const int code = square_turn(seed, i, options.turns);
      turned_ids.push_back(turn_square(ids[i], code));
      turned_pixels.push_back(turn_square(pixels[i], code));
    }
    ids = torch::stack(turned_ids).contiguous();
    pixels = torch::stack(turned_pixels);
  }
  // The masks are predicted at four times the embedding grid, as SAM's decoder predicts its low-
  // resolution masks: a larger mask is shrunk first, each cell keeping the largest id it covers
  // (so a one-pixel lesion survives, as in data::sam_mask_transform). The loss then costs the
  // same whatever the input's size.
  const int64_t mask_side = 4 * (pixels.size(-1) / model.config().sam.patch_size);
  if (h > mask_side || w > mask_side) {
    ids = F::adaptive_max_pool2d(ids.to(torch::kFloat).unsqueeze(1),
                                 F::AdaptiveMaxPool2dFuncOptions({std::min(h, mask_side), std::min(w, mask_side)}))
              .squeeze(1)
              .to(torch::kLong)
              .contiguous();
  }
  const int64_t mh = ids.size(1), mw = ids.size(2);
  const auto acc = ids.accessor<int64_t, 3>();
  auto where = torch::empty({b, points, 2}, torch::kFloat);
  auto chosen = torch::empty({b, points}, torch::kLong);
  auto where_at = where.accessor<float, 3>();
  auto chosen_at = chosen.accessor<int64_t, 2>();
  for (int64_t i = 0; i < b; ++i) {
    std::mt19937_64 rng(seed * 0x9e3779b97f4a7c15ull + static_cast<uint64_t>(i));
    std::vector<std::vector<int64_t>> pixels_of(256);  // structure id -> flat pixel indices
    for (int64_t y = 0; y < mh; ++y)
      for (int64_t x = 0; x < mw; ++x) {
        const int64_t id = acc[i][y][x];
        MSMEDCAP_CHECK(id >= 0 && id < 256, "sam_pretrain: mask id ", id, " outside 0..255");
        pixels_of[static_cast<size_t>(id)].push_back(y * mw + x);
      }
    std::vector<int64_t> present;
    for (int64_t id = 1; id < 256; ++id)
      if (!pixels_of[static_cast<size_t>(id)].empty()) present.push_back(id);
    if (present.empty()) present.push_back(0);
    for (int64_t p = 0; p < points; ++p) {
      const int64_t id = present[rng() % present.size()];
      const auto& px = pixels_of[static_cast<size_t>(id)];
      const int64_t flat = px[rng() % px.size()];
      where_at[i][p][0] = static_cast<float>((static_cast<double>(flat % mw) + 0.5) / static_cast<double>(mw));
      where_at[i][p][1] = static_cast<float>((static_cast<double>(flat / mw) + 0.5) / static_cast<double>(mh));
      chosen_at[i][p] = id;
    }
  }
  const auto target = ids.unsqueeze(1).eq(chosen.view({b, points, 1, 1})).to(torch::kFloat);  // [B, P, mh, mw]
  const auto embeddings = model.sam_embeddings(pixels);                                       // [B, C, h', w']
  const auto device = embeddings.device();
  const auto logits = model.sam_pretrain_decoder(embeddings, where.to(device), mh, mw).to(torch::kFloat);
  const auto t = target.to(device);
  const auto bce = F::binary_cross_entropy_with_logits(logits, t);
  const auto prob = logits.sigmoid();
  const auto overlap = (prob * t).sum({2, 3}), total = prob.sum({2, 3}) + t.sum({2, 3});
  const auto dice = (1 - (2 * overlap + 1) / (total + 1)).mean();
  SamPretrainLoss out;
  out.mask = bce + dice;
  out.total = out.mask;
  if (options.classes) {
    // A grid position is marked when any of its pixels is: a lesion of one pixel still names the
    // position it lies in, as the Q-Former later reads the grid.
    const auto marked =
        F::adaptive_max_pool2d(ids.ge(options.classes->first_id).to(torch::kFloat).unsqueeze(1),
                               F::AdaptiveMaxPool2dFuncOptions({embeddings.size(2), embeddings.size(3)}))
            .squeeze(1)
            .gt(0.5)
            .to(device);  // [B, h', w']
    auto [loss, accuracy] = mask_class_loss(model, embeddings, marked, *options.classes);
    out.mask_class = loss;
    out.image_accuracy = accuracy;
    out.total = out.total + options.classes->weight * loss;
    if (options.classes->places[0] > 0) {
      out.mask_place = mask_place_loss(model, embeddings, marked, *options.classes);
      out.total = out.total + options.classes->place_weight * out.mask_place;
    }
  }
  return out;
}

}  // namespace msmedcap::losses
