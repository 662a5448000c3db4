#include "msmedcap/io/weight_map.h"

#include <ATen/ATen.h>

#include <regex>

#include "msmedcap/core/check.h"

namespace msmedcap::io {

namespace {

struct Rule {
  std::regex pattern;
  std::string replacement;
};

std::string apply(const std::vector<Rule>& rules, std::string name) {
  for (const auto& rule : rules) name = std::regex_replace(name, rule.pattern, rule.replacement);
  return name;
}

const std::vector<Rule>& lavis_rules() {
  static const std::vector<Rule> rules = {
      {std::regex("^visual_encoder\\.cls_token$"), "vision_model.embeddings.class_embedding"},
      {std::regex("^visual_encoder\\.pos_embed$"), "vision_model.embeddings.position_embedding"},
      {std::regex("^visual_encoder\\.patch_embed\\.proj\\."), "vision_model.embeddings.patch_embedding."},
      {std::regex("^visual_encoder\\.blocks\\.(\\d+)\\.norm([12])\\."), "vision_model.encoder.layers.$1.layer_norm$2."},
      {std::regex("^visual_encoder\\.blocks\\.(\\d+)\\.attn\\.qkv\\."), "vision_model.encoder.layers.$1.self_attn.qkv."},
      {std::regex("^visual_encoder\\.blocks\\.(\\d+)\\.attn\\.proj\\."), "vision_model.encoder.layers.$1.self_attn.projection."},
      {std::regex("^visual_encoder\\.blocks\\.(\\d+)\\.mlp\\."), "vision_model.encoder.layers.$1.mlp."},
      {std::regex("^ln_vision\\."), "vision_model.post_layernorm."},
      {std::regex("^(sam_)?Qformer\\.bert\\.embeddings\\.LayerNorm\\."), "$1qformer.layernorm."},
      {std::regex("^(sam_)?Qformer\\.bert\\.embeddings\\."), "$1qformer.embeddings."},
      {std::regex("^(sam_)?Qformer\\.bert\\."), "$1qformer."},
      {std::regex("^(sam_)?Qformer\\.cls\\."), "$1qformer.cls."},
      {std::regex("\\.attention\\.self\\."), ".attention.attention."},
      {std::regex("\\.crossattention\\.self\\."), ".crossattention.attention."},
      {std::regex("^(opt|t5|llm)_proj\\."), "language_projection."},
      {std::regex("^sam_(opt|t5|llm)_proj\\."), "sam_language_projection."},
      {std::regex("^(opt|t5|llm)_model\\."), "language_model."},
      {std::regex("^vision_proj\\."), "vision_projection."},
      {std::regex("^text_proj\\."), "text_projection."},
      {std::regex("^sam_vision_proj\\."), "sam_vision_projection."},
      {std::regex("^sam_text_proj\\."), "sam_text_projection."},
  };
  return rules;
}

const std::vector<Rule>& sam_rules() {
  static const std::vector<Rule> rules = {
      {std::regex("^image_encoder\\."), "vision_encoder."},
      {std::regex("\\.neck\\.0\\."), ".neck.conv1."},
      {std::regex("\\.neck\\.1\\."), ".neck.layer_norm1."},
      {std::regex("\\.neck\\.2\\."), ".neck.conv2."},
      {std::regex("\\.neck\\.3\\."), ".neck.layer_norm2."},
      {std::regex("\\.patch_embed\\.proj\\."), ".patch_embed.projection."},
      {std::regex("\\.blocks\\.(\\d+)\\."), ".layers.$1."},
      {std::regex("\\.norm([12])\\."), ".layer_norm$1."},
  };
  return rules;
}

const std::vector<Rule>& hf_lm_rules() {
  static const std::vector<Rule> rules = {
      {std::regex("^(h\\.\\d+\\.|wte\\.|wpe\\.|ln_f\\.)"), "transformer.$1"},
      {std::regex("^decoder\\."), "model.decoder."},
  };
  return rules;
}

/// Buffers some files carry that are not parameters (GPT-2 causal masks, LLaMA rotary
/// frequencies, BERT position ids, SAM pixel normalisation).
bool is_dropped_buffer(const std::string& name) {
  static const std::regex kBuffers(
      "(\\.attn\\.bias|\\.attn\\.masked_bias|rotary_emb\\.inv_freq|embeddings\\.position_ids|"
      "^pixel_mean|^pixel_std)$");
  return std::regex_search(name, kBuffers);
}

}  // namespace

const std::vector<std::string>& weight_formats() {
  static const std::vector<std::string> formats = {"hf", "hf-lm", "lavis", "sam"};
  return formats;
}

StateDict canonical_tensors(const TensorStore& store, const std::string& format) {
  const std::vector<Rule>* rules = nullptr;
  if (format == "lavis") {
    rules = &lavis_rules();
  } else if (format == "sam") {
    rules = &sam_rules();
  } else if (format == "hf-lm") {
    rules = &hf_lm_rules();
  } else {
    MSMEDCAP_CHECK(format == "hf", store.path(), ": unknown weights format '", format,
                   "' (expected hf, hf-lm, lavis or sam)");
  }
  StateDict out;
  std::map<std::string, std::pair<at::Tensor, at::Tensor>> qv_bias;  // LAVIS EVA q/v biases
  static const std::regex kQvBias("^visual_encoder\\.blocks\\.(\\d+)\\.attn\\.([qv])_bias$");
  for (const auto& name : store.names()) {
    if (rules != nullptr && is_dropped_buffer(name)) continue;
    std::smatch m;
    if (format == "lavis" && std::regex_match(name, m, kQvBias)) {
      auto& slot = qv_bias["vision_model.encoder.layers." + m[1].str() + ".self_attn.qkv.bias"];
      (m[2] == "q" ? slot.first : slot.second) = store.view(name);
      continue;
    }
    const std::string canonical = rules == nullptr ? name : apply(*rules, name);
    MSMEDCAP_CHECK(out.emplace(canonical, store.view(name)).second, store.path(), ": tensors map to '",
                   canonical, "' twice under format ", format);
  }
  for (const auto& [name, qv] : qv_bias) {
    MSMEDCAP_CHECK(qv.first.defined() && qv.second.defined(), store.path(), ": ", name,
                   " needs both q_bias and v_bias");
    MSMEDCAP_CHECK(qv.first.sizes() == qv.second.sizes() && qv.first.dim() == 1, store.path(),
                   ": q_bias and v_bias of ", name, " differ in shape");
    // EVA's key has no bias: the fused bias is [q_bias, 0, v_bias].
    out[name] = at::cat({qv.first, at::zeros_like(qv.first), qv.second});
  }
  return out;
}

std::vector<std::string> optional_prefixes(const std::string& format) {
  if (format != "lavis") return {};
  // Stage-1 parts a stage-2 / captioning checkpoint may still carry (MSMedCap's
  // transform.ipynb copies them in only to satisfy load_state_dict).
  std::vector<std::string> out = {"temp", "vision_projection.", "text_projection.", "itm_head.",
                                  "sam_vision_projection.", "sam_text_projection.", "sam_itm_head.",
                                  "sam_temp"};
  for (const std::string q : {"qformer.", "sam_qformer."}) {
    out.push_back(q + "cls.");
    out.push_back(q + "embeddings.");
    out.push_back(q + "encoder.layer.*.intermediate.");  // the text path's feed-forward
    out.push_back(q + "encoder.layer.*.output.");
  }
  return out;
}

}  // namespace msmedcap::io
