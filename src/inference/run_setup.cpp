#include "msmedcap/inference/run_setup.h"

#include <algorithm>

#include <ATen/ATen.h>

#include "msmedcap/core/check.h"
#include "msmedcap/core/device.h"
#include "msmedcap/inference/captioner.h"
#include "msmedcap/models/pretrained.h"

namespace msmedcap::inference {

c10::ScalarType load_dtype(const config::RuntimeConfig& runtime) {
  return runtime.dtype == "int8" || runtime.dtype == "w8a8" ? c10::kFloat
                                                            : core::parse_dtype(runtime.dtype, "runtime.dtype");
}

std::optional<models::WeightFormat> decode_weight_format(const config::RuntimeConfig& runtime) {
  if (core::parse_device(runtime.device).is_cuda()) return std::nullopt;
  return models::parse_weight_format(runtime.dtype, "runtime.dtype");
}

models::MsMedCapModel load_inference_model(const config::RunConfig& cfg, const std::string& command) {
  MSMEDCAP_CHECK(command.empty() || (cfg.runtime.dtype != "int8" && cfg.runtime.dtype != "w8a8"),
                 "runtime.dtype: ", cfg.runtime.dtype, " packs the decoder's weights for captioning; ", command,
                 " does not decode (use fp32 or bf16)");
  // Inference only reads its weights: on the CPU those in the file's dtype stay in its pages.
  const auto device = core::parse_device(cfg.runtime.device);
  const models::LoadTarget target{load_dtype(cfg.runtime), device, device.is_cpu()};
  auto model = models::load_model(cfg, target);
  model->eval();
  std::vector<at::Tensor> finite;
  for (const auto& p : model->parameters(true))
    finite.push_back(p.is_floating_point() ? at::isfinite(p).all() : at::ones({}, p.options().dtype(at::kBool)));
  if (finite.empty() || at::stack(finite).all().to(at::kCPU).item<bool>()) {  // one sync, not one per tensor
    const auto format = decode_weight_format(cfg.runtime);
    if (format && command.empty()) model->decoder().pack_weights(*format);
    return model;
  }
  for (const auto& item : model->named_parameters(true)) {
    const auto& p = item.value();
    if (!p.is_floating_point() || at::isfinite(p).all().item<bool>()) continue;
    std::string from;
    for (const auto& w : cfg.weights) from += (from.empty() ? "" : ", ") + w.path;
    MSMEDCAP_FAIL("model: parameter '", item.key(), "' has non-finite values (", at::isnan(p).sum().item<int64_t>(),
                  " NaN, ", at::isinf(p).sum().item<int64_t>(), " infinite of ", p.numel(),
                  ") in the weights loaded from ", from.empty() ? std::string("the seed") : from,
                  "; a diverged run's checkpoint cannot be used");
  }
  return model;
}

RunCaptioning run_captioning(const config::RunConfig& cfg) {
  MSMEDCAP_CHECK(!cfg.tokenizers.decoder.empty(),
                 "caption: the config names no decoder tokenizer (tokenizers.decoder)");
  RunCaptioning r;
  r.tokenizer = data::load_tokenizer(cfg.tokenizers.decoder);
  r.options.generate = generate_options(cfg.generate, *r.tokenizer, cfg.train.eos_text);
  r.options.prompt = cfg.train.prompt;
  r.batch.batch_size = cfg.loader.batch_size;
  r.batch.workers = std::max<int64_t>(1, cfg.loader.workers);
  r.batch.transform = cfg.data.transform;
  return r;
}

}  // namespace msmedcap::inference
