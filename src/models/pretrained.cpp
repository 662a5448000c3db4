#include "msmedcap/models/pretrained.h"

#include <set>

#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/embedding.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/modules/normalization.h>

#include "msmedcap/config/config_io.h"
#include "msmedcap/core/check.h"
#include "msmedcap/io/checkpoint.h"
#include "msmedcap/io/weight_map.h"

namespace msmedcap::models {

namespace {

/// HF value of `key`, or `fallback` when absent or null.
template <class T>
T get_or(const config::Json& j, const char* key, T fallback, const std::string& where) {
  const auto it = j.find(key);
  if (it == j.end() || it->is_null()) return fallback;
  try {
    return it->get<T>();
  } catch (const config::Json::exception&) {
    MSMEDCAP_FAIL(where, ": '", key, "' has the wrong type: ", it->dump());
  }
}

const config::Json& section(const config::Json& hf, const char* key, const std::string& path) {
  static const config::Json kEmpty = config::Json::object();
  const auto it = hf.find(key);
  if (it == hf.end() || it->is_null()) return kEmpty;
  MSMEDCAP_CHECK(it->is_object(), path, ": '", key, "' must be an object");
  return *it;
}

}  // namespace

config::Json read_hf_config(const std::string& dir) {
  const config::Json hf = config::read_json_file(dir + "/config.json");
  MSMEDCAP_CHECK(hf.is_object(), dir, "/config.json: must be a JSON object");
  return hf;
}

HfKind hf_kind(const config::Json& hf, const std::string& path) {
  const std::string type = get_or<std::string>(hf, "model_type", "", path);
  if (type == "blip-2") return HfKind::kBlip2;
  if (type == "sam") return HfKind::kSam;
  if (type == "clip_vision_model" || type == "clip") return HfKind::kClipVision;
  if (type == "opt" || type == "llama" || type == "gpt2") return HfKind::kCausalLm;
  MSMEDCAP_FAIL(path, ": model_type '", type,
                "' is not supported (expected blip-2, sam, clip, clip_vision_model, opt, llama or gpt2)");
}

config::DecoderConfig decoder_config_from_hf(const config::Json& t, const std::string& path) {
  config::DecoderConfig d;
  const std::string type = get_or<std::string>(t, "model_type", "opt", path);
  if (type == "opt") {
    d.arch = "opt";
    d.vocab_size = get_or<int64_t>(t, "vocab_size", 50272, path);
    d.hidden_size = get_or<int64_t>(t, "hidden_size", 768, path);
    d.num_hidden_layers = get_or<int64_t>(t, "num_hidden_layers", 12, path);
    d.num_attention_heads = get_or<int64_t>(t, "num_attention_heads", 12, path);
    d.intermediate_size = get_or<int64_t>(t, "ffn_dim", 3072, path);
    d.max_position_embeddings = get_or<int64_t>(t, "max_position_embeddings", 2048, path);
    d.word_embed_proj_dim = get_or<int64_t>(t, "word_embed_proj_dim", d.hidden_size, path);
    d.do_layer_norm_before = get_or<bool>(t, "do_layer_norm_before", true, path);
    d.tie_word_embeddings = get_or<bool>(t, "tie_word_embeddings", true, path);
    d.layer_norm_eps = 1e-5;
    d.bos_token_id = get_or<int64_t>(t, "bos_token_id", 2, path);
    d.eos_token_id = get_or<int64_t>(t, "eos_token_id", 2, path);
    d.pad_token_id = get_or<int64_t>(t, "pad_token_id", 1, path);
  } else if (type == "llama") {
    d.arch = "llama";
    d.vocab_size = get_or<int64_t>(t, "vocab_size", 32000, path);
    d.hidden_size = get_or<int64_t>(t, "hidden_size", 4096, path);
    d.num_hidden_layers = get_or<int64_t>(t, "num_hidden_layers", 32, path);
    d.num_attention_heads = get_or<int64_t>(t, "num_attention_heads", 32, path);
    d.num_key_value_heads = get_or<int64_t>(t, "num_key_value_heads", d.num_attention_heads, path);
    d.intermediate_size = get_or<int64_t>(t, "intermediate_size", 11008, path);
    d.max_position_embeddings = get_or<int64_t>(t, "max_position_embeddings", 2048, path);
    d.tie_word_embeddings = get_or<bool>(t, "tie_word_embeddings", false, path);
    d.layer_norm_eps = get_or<double>(t, "rms_norm_eps", 1e-6, path);
    d.rope_theta = get_or<double>(t, "rope_theta", 10000.0, path);
    d.bos_token_id = get_or<int64_t>(t, "bos_token_id", 1, path);
    d.eos_token_id = get_or<int64_t>(t, "eos_token_id", 2, path);
    d.pad_token_id = get_or<int64_t>(t, "pad_token_id", 0, path);
    const int64_t head_dim = get_or<int64_t>(t, "head_dim", d.hidden_size / d.num_attention_heads, path);
    MSMEDCAP_CHECK(head_dim * d.num_attention_heads == d.hidden_size, path, ": head_dim ", head_dim,
                   " x heads != hidden_size (not supported)");
    MSMEDCAP_CHECK(get_or<config::Json>(t, "rope_scaling", config::Json(), path).is_null(), path,
                   ": rope_scaling is not supported");
    MSMEDCAP_CHECK(!get_or<bool>(t, "attention_bias", false, path) && !get_or<bool>(t, "mlp_bias", false, path),
                   path, ": attention_bias / mlp_bias are not supported");
  } else if (type == "gpt2") {
    d.arch = "gpt2";
    d.vocab_size = get_or<int64_t>(t, "vocab_size", 50257, path);
    d.hidden_size = get_or<int64_t>(t, "n_embd", 768, path);
    d.num_hidden_layers = get_or<int64_t>(t, "n_layer", 12, path);
    d.num_attention_heads = get_or<int64_t>(t, "n_head", 12, path);
    d.intermediate_size = get_or<int64_t>(t, "n_inner", 4 * d.hidden_size, path);
    d.max_position_embeddings = get_or<int64_t>(t, "n_positions", 1024, path);
    d.tie_word_embeddings = get_or<bool>(t, "tie_word_embeddings", true, path);
    d.layer_norm_eps = get_or<double>(t, "layer_norm_epsilon", 1e-5, path);
    d.bos_token_id = get_or<int64_t>(t, "bos_token_id", 50256, path);
    d.eos_token_id = get_or<int64_t>(t, "eos_token_id", 50256, path);
    d.pad_token_id = get_or<int64_t>(t, "pad_token_id", d.eos_token_id, path);
    MSMEDCAP_CHECK(get_or<std::string>(t, "activation_function", "gelu_new", path) == "gelu_new", path,
                   ": only activation_function gelu_new is supported");
  } else {
    MSMEDCAP_FAIL(path, ": text model_type '", type, "' is not supported (expected opt, llama or gpt2)");
  }
  return d;
}

config::ModelConfig model_config_from_hf_blip2(const config::Json& hf, const std::string& path) {
  config::ModelConfig m;
  m.use_clip = true;
  m.use_sam = false;
  const auto& v = section(hf, "vision_config", path);
  m.vision.hidden_size = get_or<int64_t>(v, "hidden_size", 1408, path);
  m.vision.intermediate_size = get_or<int64_t>(v, "intermediate_size", 6144, path);
  m.vision.num_hidden_layers = get_or<int64_t>(v, "num_hidden_layers", 39, path);
  m.vision.num_attention_heads = get_or<int64_t>(v, "num_attention_heads", 16, path);
  m.vision.image_size = get_or<int64_t>(v, "image_size", 224, path);
  m.vision.patch_size = get_or<int64_t>(v, "patch_size", 14, path);
  m.vision.layer_norm_eps = get_or<double>(v, "layer_norm_eps", 1e-6, path);
  const auto& q = section(hf, "qformer_config", path);
  m.qformer.hidden_size = get_or<int64_t>(q, "hidden_size", 768, path);
  m.qformer.intermediate_size = get_or<int64_t>(q, "intermediate_size", 3072, path);
  m.qformer.num_hidden_layers = get_or<int64_t>(q, "num_hidden_layers", 12, path);
  m.qformer.num_attention_heads = get_or<int64_t>(q, "num_attention_heads", 12, path);
  m.qformer.cross_attention_frequency = get_or<int64_t>(q, "cross_attention_frequency", 2, path);
  m.qformer.encoder_hidden_size = get_or<int64_t>(q, "encoder_hidden_size", 1408, path);
  m.qformer.vocab_size = get_or<int64_t>(q, "vocab_size", 30522, path);
  m.qformer.max_position_embeddings = get_or<int64_t>(q, "max_position_embeddings", 512, path);
  m.qformer.layer_norm_eps = get_or<double>(q, "layer_norm_eps", 1e-12, path);
  m.qformer.num_query_tokens = get_or<int64_t>(hf, "num_query_tokens", 32, path);
  MSMEDCAP_CHECK(get_or<config::Json>(hf, "image_token_index", config::Json(), path).is_null(), path,
                 ": image_token_index (processor-side <image> placeholders) is not supported; "
                 "msmedcap concatenates the projected queries before the text");
  m.decoder = decoder_config_from_hf(section(hf, "text_config", path), path + " text_config");
  m.sam_qformer = m.qformer;
  m.validate();
  return m;
}

config::VisionConfig clip_vision_config_from_hf(const config::Json& hf, const std::string& path) {
  const bool nested = get_or<std::string>(hf, "model_type", "", path) == "clip";
  const auto& v = nested ? section(hf, "vision_config", path) : hf;
  config::VisionConfig c;
  c.type = "clip";
  c.hidden_size = get_or<int64_t>(v, "hidden_size", 768, path);
  c.intermediate_size = get_or<int64_t>(v, "intermediate_size", 3072, path);
  c.num_hidden_layers = get_or<int64_t>(v, "num_hidden_layers", 12, path);
  c.num_attention_heads = get_or<int64_t>(v, "num_attention_heads", 12, path);
  c.image_size = get_or<int64_t>(v, "image_size", 224, path);
  c.patch_size = get_or<int64_t>(v, "patch_size", 32, path);
  c.layer_norm_eps = get_or<double>(v, "layer_norm_eps", 1e-5, path);
  MSMEDCAP_CHECK(get_or<std::string>(v, "hidden_act", "quick_gelu", path) == "quick_gelu", path,
                 ": only hidden_act quick_gelu is supported for CLIP");
  c.validate(path);
  return c;
}

config::SamEncoderConfig sam_config_from_hf(const config::Json& hf, const std::string& path) {
  const auto& v = section(hf, "vision_config", path);
  config::SamEncoderConfig s;
  s.hidden_size = get_or<int64_t>(v, "hidden_size", 768, path);
  s.num_hidden_layers = get_or<int64_t>(v, "num_hidden_layers", 12, path);
  s.num_attention_heads = get_or<int64_t>(v, "num_attention_heads", 12, path);
  const double mlp_ratio = get_or<double>(v, "mlp_ratio", 4.0, path);
  s.mlp_dim = get_or<int64_t>(v, "mlp_dim", static_cast<int64_t>(s.hidden_size * mlp_ratio), path);
  s.image_size = get_or<int64_t>(v, "image_size", 1024, path);
  s.patch_size = get_or<int64_t>(v, "patch_size", 16, path);
  s.window_size = get_or<int64_t>(v, "window_size", 14, path);
  s.global_attn_indexes = get_or<std::vector<int64_t>>(v, "global_attn_indexes", {2, 5, 8, 11}, path);
  s.output_channels = get_or<int64_t>(v, "output_channels", 256, path);
  s.layer_norm_eps = get_or<double>(v, "layer_norm_eps", 1e-6, path);
  s.use_rel_pos = get_or<bool>(v, "use_rel_pos", true, path);
  MSMEDCAP_CHECK(get_or<bool>(v, "use_abs_pos", true, path), path, ": use_abs_pos=false is not supported");
  s.validate(path + " vision_config");
  return s;
}

void init_weights(torch::nn::Module& model, double std) {
  torch::NoGradGuard no_grad;
  for (const auto& m : model.modules()) {
    if (auto* linear = m->as<torch::nn::Linear>()) {
      linear->weight.normal_(0.0, std);
      if (linear->bias.defined()) linear->bias.zero_();
    } else if (auto* conv = m->as<torch::nn::Conv2d>()) {
      conv->weight.normal_(0.0, std);
      if (conv->bias.defined()) conv->bias.zero_();
    } else if (auto* embedding = m->as<torch::nn::Embedding>()) {
      embedding->weight.normal_(0.0, std);
    } else if (auto* norm = m->as<torch::nn::LayerNorm>()) {
      if (norm->weight.defined()) norm->weight.fill_(1.0);
      if (norm->bias.defined()) norm->bias.zero_();
    }
  }
}

MsMedCapModel build_model(const config::ModelConfig& cfg) {
  MsMedCapModel model(cfg);
  init_weights(*model);
  return model;
}

namespace {
io::LoadOptions weight_options(const std::string& prefix, const config::LoadConfig& policy,
                               const std::string& format) {
  io::LoadOptions options;
  options.policy = policy;
  options.prefix = prefix;
  // A tied LM head may still be saved (it equals the token embedding); SAM checkpoints carry
  // the prompt encoder and mask decoder, which captioning does not use.
  for (const char* name : {"language_model.lm_head.weight", "lm_head.weight",
                           "vision_model.embeddings.position_ids",
                           "sam_model.prompt_encoder.", "sam_model.mask_decoder.",
                           "sam_model.shared_image_embedding.", "prompt_encoder.", "mask_decoder.",
                           "shared_image_embedding."}) {
    options.policy.allow_unexpected.emplace_back(name);
  }
  for (const auto& optional : io::optional_prefixes(format)) {
    options.policy.allow_unexpected.push_back(prefix + optional);
  }
  return options;
}

/// The tensors of `path` under canonical names (renamed by the weight map unless already HF).
std::unique_ptr<io::TensorSource> open_source(const std::string& path, const std::string& format) {
  auto store = std::make_unique<io::TensorStore>(io::TensorStore::open(io::resolve_run_folder(path)));
  if (format == "hf") return store;
  return std::make_unique<io::StateDictSource>(io::canonical_tensors(*store, format),
                                               path + " (format " + format + ")");
}
}  // namespace

io::LoadReport load_weights(torch::nn::Module& model, const std::string& path,
                            const std::string& prefix, const config::LoadConfig& policy,
                            const std::string& format) {
  return io::load_state_dict(model, *open_source(path, format), weight_options(prefix, policy, format));
}

std::vector<std::string> load_weight_sources(torch::nn::Module& model,
                                             const std::vector<config::WeightsSource>& sources,
                                             const config::LoadConfig& policy) {
  MSMEDCAP_CHECK(!sources.empty(), "weights: no weight files given (set weights = [{\"path\": ...}])");
  std::set<std::string> loaded;
  for (const auto& source : sources) {
    auto options = weight_options(source.prefix, policy, source.format);
    options.require_complete = false;
    const auto report = io::load_state_dict(model, *open_source(source.path, source.format), options);
    loaded.insert(report.loaded.begin(), report.loaded.end());
  }
  std::vector<std::string> missing;
  for (const auto& [name, tensor] : io::module_state_dict(model)) {
    if (loaded.count(name)) continue;
    bool allowed = false;
    for (const auto& p : policy.allow_missing) allowed = allowed || io::matches_prefix(name, p);
    if (!allowed) missing.push_back(name);
  }
  MSMEDCAP_CHECK(missing.empty(), "weights: ", missing.size(), " parameters are in no weight file (",
                 missing[0], missing.size() > 1 ? ", ..." : "",
                 "); add a weights entry or list their prefix in load.allow_missing");
  return {loaded.begin(), loaded.end()};
}

}  // namespace msmedcap::models
