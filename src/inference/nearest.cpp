#include "msmedcap/inference/nearest.h"

#include <torch/torch.h>

#include <random>

#include "msmedcap/core/check.h"
#include "msmedcap/core/error_text.h"
#include "msmedcap/data/loader.h"

namespace msmedcap::inference {

namespace F = torch::nn::functional;

PooledFeatures pooled_features(models::MsMedCapModelImpl& model, const std::vector<data::Sample>& samples,
                               const config::ImageTransformConfig& transform, int64_t batch) {
  MSMEDCAP_CHECK(batch >= 1, "nearest: batch size must be at least 1");
  c10::InferenceMode no_grad;
  const auto& cfg = model.config();
  config::ImageTransformConfig t = transform;
  t.augment = false;
  t.hflip = false;
  data::ExampleOptions eo;
  eo.clip = cfg.use_clip;
  eo.sam = cfg.use_sam;
  eo.require_caption = false;
  const auto process = data::make_example_processor(t, eo);
  const auto device = model.parameters().front().device();
  PooledFeatures out;
  std::vector<at::Tensor> parts;
  std::mt19937_64 rng(0);  // unused without augmentation
  for (size_t begin = 0; begin < samples.size(); begin += static_cast<size_t>(batch)) {
    std::vector<at::Tensor> clips, sams;
    for (size_t i = begin; i < std::min(samples.size(), begin + static_cast<size_t>(batch)); ++i) {
      try {
        const data::Example ex = process(samples[i], rng);
        if (ex.clip.defined()) clips.push_back(ex.clip);
        if (ex.sam.defined()) sams.push_back(ex.sam);
        out.rows.push_back(i);
      } catch (const msmedcap::Error& e) {
        out.unreadable.push_back(samples[i].id + ": " + core::error_text(e));
      }
    }
    if (clips.empty() && sams.empty()) continue;
    std::vector<at::Tensor> branches;
    if (!clips.empty()) {
      const auto f = model.clip_features(at::stack(clips).to(device)).to(at::kFloat).mean(1);  // [b, Dv]
      branches.push_back(F::normalize(f, F::NormalizeFuncOptions().dim(-1)));
    }
    if (!sams.empty()) {
      const auto e = model.sam_embeddings(at::stack(sams).to(device)).to(at::kFloat);  // [b, C, h, w]
      const auto pooled = at::adaptive_avg_pool2d(e, {4, 4}).flatten(1);
      branches.push_back(F::normalize(pooled, F::NormalizeFuncOptions().dim(-1)));
    }
    parts.push_back(F::normalize(at::cat(branches, 1), F::NormalizeFuncOptions().dim(-1)).cpu());
  }
  MSMEDCAP_CHECK(!parts.empty(), "nearest: no image could be read (", out.unreadable.size(), " tried)");
  out.features = at::cat(parts, 0);
  return out;
}

std::vector<int64_t> nearest_rows(const at::Tensor& queries, const at::Tensor& keys, int64_t chunk) {
  MSMEDCAP_CHECK(queries.dim() == 2 && keys.dim() == 2 && queries.size(1) == keys.size(1) && keys.size(0) > 0,
                 "nearest: expected [N, D] and [M, D] features, got ", queries.sizes(), " and ", keys.sizes());
  std::vector<int64_t> out;
  for (int64_t begin = 0; begin < queries.size(0); begin += chunk) {
    const auto q = queries.narrow(0, begin, std::min(chunk, queries.size(0) - begin));
    const auto best = std::get<1>(at::matmul(q, keys.t()).max(1)).contiguous();
    const auto* p = best.data_ptr<int64_t>();
    out.insert(out.end(), p, p + best.numel());
  }
  return out;
}

}  // namespace msmedcap::inference
