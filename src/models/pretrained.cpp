#include "msmedcap/models/pretrained.h"

#include <mutex>
#include <set>

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <torch/csrc/autograd/grad_mode.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/normalization.h>
#include <torch/utils.h>

#include "msmedcap/config/config_io.h"
#include "msmedcap/core/check.h"
#include "msmedcap/core/logging.h"
#include "msmedcap/io/checkpoint.h"
#include "msmedcap/io/weight_map.h"
#include "msmedcap/models/layers.h"

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

/// `torch_dtype` says how the checkpoint was saved; as HF's from_pretrained (without
/// torch_dtype="auto") msmedcap loads into runtime.dtype whatever it says, but a value that is
/// not a floating-point type names a file it cannot be.
void check_torch_dtype(const config::Json& hf, const std::string& path) {
  const std::string dtype = get_or<std::string>(hf, "torch_dtype", "float32", path);
  MSMEDCAP_CHECK(dtype == "float32" || dtype == "float16" || dtype == "bfloat16", path, ": torch_dtype '", dtype,
                 "' is not float32, float16 or bfloat16");
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
  check_torch_dtype(t, path);
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
    MSMEDCAP_CHECK(!get_or<bool>(t, "attention_bias", false, path) && !get_or<bool>(t, "mlp_bias", false, path), path,
                   ": attention_bias / mlp_bias are not supported");
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
  m.qformer.hidden_dropout_prob = get_or<double>(q, "hidden_dropout_prob", 0.1, path);
  m.qformer.attention_probs_dropout_prob = get_or<double>(q, "attention_probs_dropout_prob", 0.1, path);
  m.qformer.num_query_tokens = get_or<int64_t>(hf, "num_query_tokens", 32, path);
  // Today's hub files name the placeholder id the processor writes num_query_tokens times
  // before BOS; older ones have none (the queries are concatenated before the text).
  m.image_token_index = get_or<int64_t>(hf, "image_token_index", -1, path);
  check_torch_dtype(hf, path);
  m.decoder = decoder_config_from_hf(section(hf, "text_config", path), path + " text_config");
  m.sam_qformer = m.qformer;
  m.validate();
  return m;
}

config::VisionConfig clip_vision_config_from_hf(const config::Json& hf, const std::string& path) {
  check_torch_dtype(hf, path);
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
  check_torch_dtype(hf, path);
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

namespace {
/// A generator of its own for one parameter: splitmix64 over the seed and the name's FNV-1a hash.
at::Generator parameter_generator(uint64_t seed, const std::string& name) {
  uint64_t h = 1469598103934665603ull;
  for (const char c : name) h = (h ^ static_cast<uint8_t>(c)) * 1099511628211ull;
  uint64_t z = seed + h + 0x9e3779b97f4a7c15ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return at::make_generator<at::CPUGeneratorImpl>(z ^ (z >> 31));
}

/// The parameter's HF initial values: "normal" (N(0, std)), "zero" or "one".
void init_parameter(at::Tensor& p, const char* kind, double std, uint64_t seed, const std::string& name) {
  if (!p.defined()) return;
  if (std::string(kind) == "normal") {
    // Drawn on the CPU in float32 whatever the parameter's device and dtype, so the values
    // do not depend on either.
    auto values = at::empty(p.sizes(), at::kFloat).normal_(0.0, std, parameter_generator(seed, name));
    p.set_data(values.to(p.device(), p.scalar_type()));
  } else {
    p.set_data(at::full(p.sizes(), std::string(kind) == "one" ? 1.0 : 0.0, p.options()));
  }
}
}  // namespace

void init_weights(torch::nn::Module& model, uint64_t seed, const std::set<std::string>* only, double std) {
  torch::NoGradGuard no_grad;
  for (const auto& item : model.named_modules()) {
    const std::string base = item.key().empty() ? "" : item.key() + ".";
    auto init = [&](at::Tensor& p, const char* local, const char* kind) {
      const std::string name = base + local;
      if (only == nullptr || only->count(name)) init_parameter(p, kind, std, seed, name);
    };
    const auto& m = item.value();
    if (auto* linear = m->as<Linear>()) {
      init(linear->weight, "weight", "normal");
      init(linear->bias, "bias", "zero");
    } else if (auto* conv1d = m->as<Conv1D>()) {
      init(conv1d->weight, "weight", "normal");
      init(conv1d->bias, "bias", "zero");
    } else if (auto* embedding = m->as<Embedding>()) {
      init(embedding->weight, "weight", "normal");
    } else if (auto* conv = m->as<torch::nn::Conv2d>()) {
      init(conv->weight, "weight", "normal");
      init(conv->bias, "bias", "zero");
    } else if (auto* norm = m->as<torch::nn::LayerNorm>()) {
      init(norm->weight, "weight", "one");
      init(norm->bias, "bias", "zero");
    }
  }
}

namespace {
/// The key build_model and load_model derive their weights from: one draw from the global
/// generator after construction (which draws the few small parameters it sets itself).
uint64_t init_seed() {
  auto generator = at::detail::getDefaultCPUGenerator();
  std::lock_guard<std::mutex> lock(generator.mutex());
  return at::check_generator<at::CPUGeneratorImpl>(generator)->random64();
}

MsMedCapModel construct_deferred(const config::ModelConfig& cfg) {
  DeferInit defer;
  return MsMedCapModel(cfg);
}
}  // namespace

MsMedCapModel build_model(const config::ModelConfig& cfg) {
  auto model = construct_deferred(cfg);
  init_weights(*model, init_seed());
  return model;
}

void move_to(torch::nn::Module& model, const LoadTarget& target) {
  torch::NoGradGuard no_grad;
  for (auto& p : model.parameters()) {
    const auto dtype = p.is_floating_point() ? target.dtype : p.scalar_type();
    if (p.device() != target.device || p.scalar_type() != dtype) p.set_data(p.to(target.device, dtype));
  }
  for (auto& b : model.buffers()) {
    const auto dtype = b.is_floating_point() ? target.dtype : b.scalar_type();
    if (b.device() != target.device || b.scalar_type() != dtype) b.set_data(b.to(target.device, dtype));
  }
}

namespace {
io::LoadOptions weight_options(const std::string& prefix, const config::LoadConfig& policy, const std::string& format) {
  io::LoadOptions options;
  options.policy = policy;
  options.prefix = prefix;
  // A tied LM head may still be saved (it equals the token embedding); SAM checkpoints carry
  // the prompt encoder and mask decoder, which captioning does not use.
  for (const char* name : {"language_model.lm_head.weight", "lm_head.weight", "vision_model.embeddings.position_ids",
                           "sam_model.prompt_encoder.", "sam_model.mask_decoder.", "sam_model.shared_image_embedding.",
                           "prompt_encoder.", "mask_decoder.", "shared_image_embedding."}) {
    options.policy.allow_unexpected.emplace_back(name);
  }
  for (const auto& optional : io::optional_prefixes(format)) {
    options.policy.allow_unexpected.push_back(prefix + optional);
  }
  return options;
}

/// Throws naming the first of `missing` that policy.allow_missing does not allow.
void check_allowed_missing(const std::set<std::string>& missing, const config::LoadConfig& policy) {
  std::vector<std::string> refused;
  for (const auto& name : missing) {
    bool allowed = false;
    for (const auto& p : policy.allow_missing) allowed = allowed || io::matches_prefix(name, p);
    if (!allowed) refused.push_back(name);
  }
  MSMEDCAP_CHECK(refused.empty(), "weights: ", refused.size(), " parameters are in no weight file (",
                 refused.empty() ? "" : refused[0], refused.size() > 1 ? ", ..." : "",
                 "); add a weights entry or list their prefix in load.allow_missing");
}

/// The tensors of `path` under canonical names (renamed by the weight map unless already HF).
std::unique_ptr<io::TensorSource> open_source(const std::string& path, const std::string& format) {
  auto store = std::make_unique<io::TensorStore>(io::TensorStore::open(io::resolve_run_folder(path)));
  if (format == "hf") return store;
  return std::make_unique<io::StateDictSource>(io::canonical_tensors(*store, format),
                                               path + " (format " + format + ")");
}
}  // namespace

io::LoadReport load_weights(torch::nn::Module& model, const std::string& path, const std::string& prefix,
                            const config::LoadConfig& policy, const std::string& format,
                            const std::optional<LoadTarget>& target) {
  auto options = weight_options(prefix, policy, format);
  if (target) {
    options.dtype = target->dtype;
    options.device = target->device;
    options.share_file_pages = target->share_file_pages;
  }
  return io::load_state_dict(model, *open_source(path, format), options);
}

MsMedCapModel load_model(const config::ModelConfig& cfg, const std::vector<config::WeightsSource>& sources,
                         const config::LoadConfig& policy, const LoadTarget& target) {
  auto model = construct_deferred(cfg);
  const uint64_t seed = init_seed();
  std::vector<std::unique_ptr<io::TensorSource>> opened;
  std::set<std::string> covered;
  for (const auto& source : sources) {
    opened.push_back(open_source(source.path, source.format));
    auto options = weight_options(source.prefix, policy, source.format);
    options.require_complete = false;
    const auto report = io::check_state_dict(*model, *opened.back(), options);
    covered.insert(report.loaded.begin(), report.loaded.end());
  }
  std::set<std::string> missing;
  for (const auto& [name, tensor] : io::module_state_dict(*model)) {
    if (!covered.count(name)) missing.insert(name);
  }
  if (!sources.empty()) check_allowed_missing(missing, policy);
  init_weights(*model, seed, &missing);
  for (size_t i = 0; i < sources.size(); ++i) {
    auto options = weight_options(sources[i].prefix, policy, sources[i].format);
    options.require_complete = false;
    options.dtype = target.dtype;
    options.device = target.device;
    options.share_file_pages = target.share_file_pages;
    io::load_state_dict(*model, *opened[i], options);
  }
  move_to(*model, target);
  model->eval();  // as HF's from_pretrained: dropout off until a trainer sets its modules training
  return model;
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
  std::set<std::string> missing;
  for (const auto& [name, tensor] : io::module_state_dict(model)) {
    if (!loaded.count(name)) missing.insert(name);
  }
  check_allowed_missing(missing, policy);
  return {loaded.begin(), loaded.end()};
}

MsMedCapModel load_model(const config::RunConfig& run, const LoadTarget& target) {
  torch::manual_seed(static_cast<uint64_t>(run.runtime.seed));
  if (run.weights.empty())
    core::log_warn("model", "no weights in the config: every part of the model starts from random values (seed {})",
                   run.runtime.seed);
  return load_model(run.model, run.weights, run.load, target);
}

}  // namespace msmedcap::models
