#include "msmedcap/inference/forward.h"

#include <ATen/ATen.h>
#include <torch/csrc/autograd/grad_mode.h>

#include "msmedcap/core/check.h"
#include "msmedcap/core/logging.h"
#include "msmedcap/models/layers.h"
#include "msmedcap/models/pretrained.h"

namespace msmedcap::inference {

namespace {

/// The input `name` on `device` (undefined when absent and not required).
at::Tensor input(const io::TensorStore& inputs, const char* name, bool required, const c10::Device& device) {
  if (!inputs.contains(name)) {
    MSMEDCAP_CHECK(!required, inputs.path(), ": missing input '", name, "'");
    return {};
  }
  return inputs.view(name).to(device, /*non_blocking=*/false, /*copy=*/true);
}

void put(io::StateDict& out, const std::string& name, const at::Tensor& t) {
  if (t.defined()) out[name] = t.detach().to(at::kCPU).contiguous();
}

/// `module` built without initialising it, then filled from `dir` (every parameter) on the target.
template <class Module, class Config>
Module load_hf_module(const Config& cfg, const std::string& dir, const models::LoadTarget& target,
                      const std::string& format = "hf") {
  Module module{nullptr};
  {
    models::DeferInit defer;
    module = Module(cfg);
  }
  models::load_weights(*module, dir, "", {}, format, target);
  module->eval();
  return module;
}

io::StateDict run_sam_only(const std::string& dir, const config::Json& hf, const io::TensorStore& inputs,
                           const models::LoadTarget& target) {
  const auto& device = target.device;
  auto sam = load_hf_module<models::SamModel>(models::sam_config_from_hf(hf, dir + "/config.json"), dir, target);
  std::vector<at::Tensor> hidden;
  io::StateDict out;
  put(out, "vision_last_hidden_state", sam->vision_encoder(input(inputs, "pixel_values", true, device), &hidden));
  for (size_t i = 0; i < hidden.size(); ++i) put(out, "vision_hidden_state_" + std::to_string(i), hidden[i]);
  return out;
}

io::StateDict run_clip_vision(const std::string& dir, const config::Json& hf, const io::TensorStore& inputs,
                              const models::LoadTarget& target) {
  const auto& device = target.device;
  auto clip = load_hf_module<models::ClipVisionModel>(models::clip_vision_config_from_hf(hf, dir + "/config.json"), dir,
                                                      target);
  const auto out = clip->vision_model(input(inputs, "pixel_values", true, device));
  io::StateDict result;
  put(result, "vision_embeddings_output", out.embeddings);
  put(result, "vision_last_hidden_state", out.last_hidden_state);
  put(result, "vision_pooler_output", out.pooler_output);
  return result;
}

io::StateDict run_causal_lm(const std::string& dir, const config::Json& hf, const io::TensorStore& inputs,
                            const std::optional<GenerateRequest>& generate, const models::LoadTarget& target,
                            const std::optional<models::WeightFormat>& weights) {
  const auto& device = target.device;
  std::shared_ptr<models::DecoderLM> lm;
  {
    models::DeferInit defer;
    lm = models::build_decoder(models::decoder_config_from_hf(hf, dir + "/config.json"));
  }
  models::load_weights(*lm, dir, "", {}, "hf-lm", target);
  lm->eval();
  if (weights) lm->pack_weights(*weights);
  const auto ids = input(inputs, "input_ids", true, device);
  auto mask = input(inputs, "attention_mask", false, device);
  if (!mask.defined()) mask = at::ones_like(ids);
  const auto labels = input(inputs, "labels", false, device);
  io::StateDict out;
  const auto logits = lm->forward(lm->embed(ids), mask);
  put(out, "logits", logits);
  if (labels.defined()) {
    // The standard causal-LM loss: position t predicts token t + 1.
    put(out, "loss",
        at::cross_entropy_loss(logits.slice(1, 0, -1).reshape({-1, logits.size(-1)}).to(at::kFloat),
                               labels.slice(1, 1).reshape({-1}), {}, at::Reduction::Mean, -100));
  }
  if (generate) {
    const int64_t k = generate->prompt_tokens;
    MSMEDCAP_CHECK(k > 0 && k <= ids.size(1), inputs.path(), ": a language model needs --prompt-tokens 1..",
                   ids.size(1));
    put(out, "sequences",
        inference::generate(*lm, lm->embed(ids.slice(1, 0, k)), mask.slice(1, 0, k), generate->options).tokens);
  }
  return out;
}

}  // namespace

io::StateDict run_forward(const ModelSource& source, const io::TensorStore& inputs,
                          const std::optional<GenerateRequest>& generate) {
  torch::NoGradGuard no_grad;
  const models::LoadTarget target{source.dtype, source.device, source.device.is_cpu()};  // only read
  models::MsMedCapModel model{nullptr};
  if (!source.hf_dir.empty()) {
    const auto hf = models::read_hf_config(source.hf_dir);
    const std::string where = source.hf_dir + "/config.json";
    const auto kind = models::hf_kind(hf, where);
    if (kind == models::HfKind::kCausalLm)
      return run_causal_lm(source.hf_dir, hf, inputs, generate, target, source.decoder_weights);
    if (kind != models::HfKind::kBlip2) {
      MSMEDCAP_CHECK(!generate, where, ": an image encoder has no decoder to generate with");
      return kind == models::HfKind::kSam ? run_sam_only(source.hf_dir, hf, inputs, target)
                                          : run_clip_vision(source.hf_dir, hf, inputs, target);
    }
    model = models::load_model(models::model_config_from_hf_blip2(hf, where), {{source.hf_dir, "", "hf"}}, {}, target);
  } else {
    MSMEDCAP_CHECK(source.run != nullptr, "forward: no model given");
    model = models::load_model(*source.run, target);
  }
  model->eval();
  if (source.decoder_weights) model->decoder().pack_weights(*source.decoder_weights);

  const auto& device = source.device;
  const auto pixels = input(inputs, "pixel_values", false, device);
  const auto sam_pixels = input(inputs, "sam_pixel_values", false, device);
  const auto input_ids = input(inputs, "input_ids", false, device);
  const auto mask = input(inputs, "attention_mask", false, device);
  const auto labels = input(inputs, "labels", false, device);

  io::StateDict out;
  const auto visual = model->encode_images(pixels, sam_pixels);  // once, for forward and generate
  const auto parts = input_ids.defined() ? model->forward_inputs(visual, input_ids, mask, labels) : visual.parts;
  const at::Tensor& prefix = visual.embeds;
  put(out, "vision_embeddings_output", parts.vision_embeddings_output);
  put(out, "vision_last_hidden_state", parts.vision_last_hidden_state);
  put(out, "vision_pooler_output", parts.vision_pooler_output);
  put(out, "qformer_last_hidden_state", parts.qformer_last_hidden_state);
  put(out, "language_projection", parts.language_projection);
  put(out, "sam_image_embeddings", parts.sam_image_embeddings);
  put(out, "sam_qformer_last_hidden_state", parts.sam_qformer_last_hidden_state);
  put(out, "sam_language_projection", parts.sam_language_projection);
  put(out, "logits", parts.logits);
  put(out, "loss", parts.loss);

  if (generate) {
    // The prompt: the first K input_ids (with placeholders, they must hold the image tokens).
    const int64_t k = generate->prompt_tokens;
    const bool placeholders = model->config().image_token_index >= 0;
    at::Tensor embeds = prefix;
    at::Tensor prompt_mask = at::ones({prefix.size(0), prefix.size(1)}, prefix.options().dtype(at::kLong));
    MSMEDCAP_CHECK(k > 0 || !placeholders, inputs.path(),
                   ": model.image_token_index is set, so --prompt-tokens must "
                   "cover the image tokens of input_ids");
    if (k > 0) {
      MSMEDCAP_CHECK(input_ids.defined() && input_ids.size(1) >= k, inputs.path(), ": --prompt-tokens ", k,
                     " needs input_ids with at least ", k, " columns");
      const auto prompt_ids = input_ids.slice(1, 0, k);
      const auto pm = mask.defined() ? mask.slice(1, 0, k).to(at::kLong) : at::ones_like(prompt_ids);
      std::tie(embeds, prompt_mask) = model->decoder_inputs(visual, prompt_ids, pm, placeholders);
    }
    put(out, "sequences", inference::generate(model->decoder(), embeds, prompt_mask, generate->options).tokens);
  }
  return out;
}

}  // namespace msmedcap::inference
