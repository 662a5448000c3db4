#include "msmedcap/inference/model_folder.h"

#include <ATen/ATen.h>
#include <unistd.h>

#include <chrono>
#include <ctime>
#include <filesystem>
#include <sstream>

#include "msmedcap/config/config_io.h"
#include "msmedcap/core/atomic_file.h"
#include "msmedcap/core/check.h"
#include "msmedcap/core/compat.h"
#include "msmedcap/inference/captioner.h"
#include "msmedcap/inference/search.h"
#include "msmedcap/io/state_dict.h"
#include "msmedcap/io/tensor_store.h"

namespace msmedcap::inference {

namespace fs = std::filesystem;

namespace {

const char* hf_dtype_name(c10::ScalarType t) {
  return t == c10::kBFloat16 ? "bfloat16" : t == c10::kHalf ? "float16" : "float32";
}

config::Json hf_text_config(const config::DecoderConfig& d) {
  config::Json t = {{"vocab_size", d.vocab_size},
                    {"bos_token_id", d.bos_token_id},
                    {"eos_token_id", d.eos_token_id},
                    {"pad_token_id", d.pad_token_id},
                    {"tie_word_embeddings", d.tie_word_embeddings}};
  if (d.arch == "opt") {
    t.update({{"model_type", "opt"},
              {"hidden_size", d.hidden_size},
              {"num_hidden_layers", d.num_hidden_layers},
              {"num_attention_heads", d.num_attention_heads},
              {"ffn_dim", d.intermediate_size},
              {"max_position_embeddings", d.max_position_embeddings},
              {"word_embed_proj_dim", d.embed_dim()},
              {"do_layer_norm_before", d.do_layer_norm_before}});
    MSMEDCAP_CHECK(d.layer_norm_eps == 1e-5, "export --format hf: OPT's layer_norm_eps is fixed at 1e-5 in HF, got ",
                   d.layer_norm_eps);
  } else if (d.arch == "llama") {
    t.update({{"model_type", "llama"},
              {"hidden_size", d.hidden_size},
              {"num_hidden_layers", d.num_hidden_layers},
              {"num_attention_heads", d.num_attention_heads},
              {"num_key_value_heads", d.kv_heads()},
              {"intermediate_size", d.intermediate_size},
              {"max_position_embeddings", d.max_position_embeddings},
              {"rms_norm_eps", d.layer_norm_eps},
              {"rope_theta", d.rope_theta}});
  } else {
    t.update({{"model_type", "gpt2"},
              {"n_embd", d.hidden_size},
              {"n_layer", d.num_hidden_layers},
              {"n_head", d.num_attention_heads},
              {"n_inner", d.intermediate_size},
              {"n_positions", d.max_position_embeddings},
              {"layer_norm_epsilon", d.layer_norm_eps},
              {"activation_function", "gelu_new"}});
  }
  return t;
}

/// Copies a tokenizer file, or the tokenizer files of a folder (a tokenizer folder is often the
/// HF model folder itself: its weights stay behind), into the folder `to`.
void copy_tokenizer_files(const std::string& from, const fs::path& to) {
  static const char* kNames[] = {"vocab.txt",
                                 "vocab.json",
                                 "merges.txt",
                                 "tokenizer.model",
                                 "tokenizer.json",
                                 "tokenizer_config.json",
                                 "special_tokens_map.json",
                                 "added_tokens.json"};
  MSMEDCAP_CHECK(fs::exists(from), from, ": tokenizer not found");
  fs::create_directories(to);
  if (!fs::is_directory(from)) {
    fs::copy_file(from, to / fs::path(from).filename());
    // A BPE vocab.json is read with the merges.txt beside it.
    const fs::path merges = fs::path(from).parent_path() / "merges.txt";
    if (fs::path(from).filename() == "vocab.json" && fs::is_regular_file(merges))
      fs::copy_file(merges, to / "merges.txt");
    return;
  }
  for (const char* name : kNames) {
    if (fs::is_regular_file(fs::path(from) / name)) fs::copy_file(fs::path(from) / name, to / name);
  }
}

/// copy_tokenizer_files into `to`, and the path, relative to the model folder `root`, that its
/// config names: the folder, or the file in it.
std::string copy_tokenizer(const std::string& from, const fs::path& to, const fs::path& root) {
  copy_tokenizer_files(from, to);
  return fs::relative(fs::is_directory(from) ? to : to / fs::path(from).filename(), root).string();
}

std::string today() {
  const std::time_t now = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y-%m-%d", std::gmtime(&now));
  return buf;
}

void write_readme(const fs::path& dir, const config::RunConfig& cfg, const ExportOptions& o, uint64_t parameters,
                  c10::ScalarType dtype, size_t files) {
  std::ostringstream r;
  const auto& m = cfg.model;
  const std::string kind = m.use_clip && m.use_sam ? "MSMedCap (CLIP and SAM branches)"
                           : m.use_clip            ? "BLIP-2 (CLIP branch)"
                                                   : "SAM-BLIP-2 (SAM branch)";
  r << "# msmedcap model\n\n"
    << kind << " with a " << m.decoder.arch << " decoder (" << m.decoder.num_hidden_layers << " layers, "
    << m.decoder.hidden_size << " wide): " << parameters << " parameters in " << hf_dtype_name(dtype) << ", " << files
    << " weight file(s), layout `" << o.format << "`.\n\n"
    << "Exported on " << today() << " by msmedcap 0.1.0 (LibTorch " << core::torch_version() << ").\n\n"
    << "## Provenance\n\n";
  for (const auto& line : o.provenance) r << "- " << line << "\n";
  for (const auto& w : cfg.weights)
    r << "- weights: `" << w.path << "` (format " << w.format << ", prefix `" << w.prefix << "`)\n";
  if (cfg.weights.empty()) r << "- no weight files: every parameter came from the seed " << cfg.runtime.seed << "\n";
  r << "\n## Use\n\n";
  if (o.format == "hf") {
    r << "HF transformers' `Blip2ForConditionalGeneration.from_pretrained(DIR)` reads this folder, and so does\n"
      << "`msmedcap forward --hf DIR`.\n";
  } else {
    r << "```\nmsmedcap caption --model DIR --images FOLDER --out captions.jsonl\n"
      << "msmedcap train --model DIR -c configs/stages/caption.json -c MY_DATA.json --run-dir runs/finetune\n```\n";
  }
  core::write_file_atomic((dir / "README.md").string(), r.str());
}

}  // namespace

config::Json hf_blip2_config(const config::ModelConfig& m, c10::ScalarType dtype) {
  MSMEDCAP_CHECK(m.use_clip && !m.use_sam,
                 "export --format hf: HF's Blip2ForConditionalGeneration has no SAM branch "
                 "(model.use_sam must be false); use the msmedcap format");
  MSMEDCAP_CHECK(m.vision.type == "blip2", "export --format hf: the vision tower must be type blip2, got ",
                 m.vision.type);
  MSMEDCAP_CHECK(!m.qformer.text_path,
                 "export --format hf: a Q-Former with the stage-1 text path has no place in "
                 "Blip2ForConditionalGeneration; use the msmedcap format");
  const auto& v = m.vision;
  const auto& q = m.qformer;
  config::Json hf = {{"architectures", {"Blip2ForConditionalGeneration"}},
                     {"model_type", "blip-2"},
                     {"num_query_tokens", q.num_query_tokens},
                     {"torch_dtype", hf_dtype_name(dtype)},
                     {"use_decoder_only_language_model", true},
                     {"vision_config",
                      {{"model_type", "blip_2_vision_model"},
                       {"hidden_size", v.hidden_size},
                       {"intermediate_size", v.intermediate_size},
                       {"num_hidden_layers", v.num_hidden_layers},
                       {"num_attention_heads", v.num_attention_heads},
                       {"image_size", v.image_size},
                       {"patch_size", v.patch_size},
                       {"layer_norm_eps", v.layer_norm_eps}}},
                     {"qformer_config",
                      {{"model_type", "blip_2_qformer"},
                       {"hidden_size", q.hidden_size},
                       {"intermediate_size", q.intermediate_size},
                       {"num_hidden_layers", q.num_hidden_layers},
                       {"num_attention_heads", q.num_attention_heads},
                       {"cross_attention_frequency", q.cross_attention_frequency},
                       {"encoder_hidden_size", q.encoder_hidden_size},
                       {"vocab_size", q.vocab_size},
                       {"max_position_embeddings", q.max_position_embeddings},
                       {"layer_norm_eps", q.layer_norm_eps},
                       {"hidden_dropout_prob", q.hidden_dropout_prob},
                       {"attention_probs_dropout_prob", q.attention_probs_dropout_prob}}},
                     {"text_config", hf_text_config(m.decoder)}};
  if (m.image_token_index >= 0) hf["image_token_index"] = m.image_token_index;
  return hf;
}

void export_model(models::MsMedCapModelImpl& model, const config::RunConfig& cfg, const ExportOptions& o) {
  MSMEDCAP_CHECK(o.format == "msmedcap" || o.format == "hf", "export --format: expected msmedcap or hf, got '",
                 o.format, "'");
  MSMEDCAP_CHECK(!o.out.empty(), "export: give --out MODEL_DIR");
  MSMEDCAP_CHECK(!fs::exists(o.out), o.out, ": already exists; export writes a new folder (remove it or pick another)");
  // Refused before anything is written: a model HF's layout cannot hold.
  if (o.format == "hf") (void)hf_blip2_config(cfg.model, c10::kFloat);
  const fs::path out(o.out);
  const fs::path tmp = out.parent_path() / ("." + out.filename().string() + ".tmp-" + std::to_string(getpid()));
  fs::remove_all(tmp);
  fs::create_directories(tmp);
  try {
    // Every parameter and buffer, frozen parts included, as loaded.
    io::StateDict tensors;
    uint64_t parameters = 0;
    c10::ScalarType stored = c10::kFloat;
    for (const auto& [name, t] : io::module_state_dict(model)) {
      const at::Tensor cpu = t.detach().to(at::kCPU);
      if (cpu.is_floating_point()) stored = cpu.scalar_type();
      tensors.emplace(name, cpu.contiguous());
      parameters += static_cast<uint64_t>(t.numel());
    }
    // The folder's generation settings: --generate's file, else the config's own section when it
    // is not the default; its "train.eos_text's token" and "the tokenizer's pad id" become ids.
    config::Json generation;
    std::optional<config::GenerateConfig> g;
    if (!o.generate_file.empty()) {
      g = config::read_generate_file(o.generate_file);
    } else if (config::to_json(cfg.generate) != config::to_json(config::GenerateConfig{})) {
      g = cfg.generate;
    }
    if (g) {
      if (g->eos_token_id == config::GenerateConfig::kEosFromText ||
          g->pad_token_id == config::GenerateConfig::kPadFromTokenizer) {
        MSMEDCAP_CHECK(!cfg.tokenizers.decoder.empty(),
                       "export: generate.eos_token_id / pad_token_id -1 need the decoder "
                       "tokenizer (tokenizers.decoder)");
        const auto resolved = generate_options(*g, *data::load_tokenizer(cfg.tokenizers.decoder), cfg.train.eos_text);
        g->eos_token_id = resolved.eos_token_id.value_or(config::GenerateConfig::kNoEos);
        g->pad_token_id = resolved.pad_token_id;
      }
      generation = g->to_hf_json();
    }
    const auto files = io::save_sharded(tmp.string(), tensors, o.max_shard_bytes);
    if (o.format == "hf") {
      core::write_file_atomic((tmp / "config.json").string(), hf_blip2_config(cfg.model, stored).dump(2) + "\n");
      if (!cfg.tokenizers.decoder.empty()) copy_tokenizer_files(cfg.tokenizers.decoder, tmp);
      config::Json gen = {{"bos_token_id", cfg.model.decoder.bos_token_id},
                          {"eos_token_id", cfg.model.decoder.eos_token_id},
                          {"pad_token_id", cfg.model.decoder.pad_token_id}};
      if (generation.is_object()) gen.update(generation);
      core::write_file_atomic((tmp / "generation_config.json").string(), gen.dump(2) + "\n");
    } else {
      config::Json folder = {{"msmedcap_model_folder", kModelFolderVersion},
                             {"model", config::to_json(cfg.model)},
                             {"tokenizers", config::Json::object()},
                             {"data", {{"transform", config::to_json(cfg.data.transform)}}},
                             {"train", {{"prompt", cfg.train.prompt}, {"eos_text", cfg.train.eos_text}}}};
      if (!cfg.tokenizers.qformer.empty()) {
        folder["tokenizers"]["qformer"] = copy_tokenizer(cfg.tokenizers.qformer, tmp / "tokenizers" / "qformer", tmp);
      }
      if (!cfg.tokenizers.decoder.empty()) {
        folder["tokenizers"]["decoder"] = copy_tokenizer(cfg.tokenizers.decoder, tmp / "tokenizers" / "decoder", tmp);
      }
      core::write_file_atomic((tmp / "config.json").string(), folder.dump(2) + "\n");
      if (generation.is_object()) {
        core::write_file_atomic((tmp / "generation_config.json").string(), generation.dump(2) + "\n");
      }
    }
    write_readme(tmp, cfg, o, parameters, stored, files.size());
    fs::rename(tmp, out);
  } catch (...) {
    std::error_code ignored;
    fs::remove_all(tmp, ignored);
    throw;
  }
}

config::Json model_folder_layer(const std::string& dir) {
  const std::string path = dir + "/config.json";
  MSMEDCAP_CHECK(fs::is_directory(dir), dir, ": --model needs a model folder (msmedcap export writes one)");
  config::Json j = config::read_json_file(path);
  MSMEDCAP_CHECK(j.is_object() && j.contains("msmedcap_model_folder"), path,
                 ": not an msmedcap model folder (no msmedcap_model_folder key); an HF directory goes to --hf or "
                 "to weights");
  MSMEDCAP_CHECK(j["msmedcap_model_folder"] == kModelFolderVersion, path, ": model folder version ",
                 j["msmedcap_model_folder"].dump(), " is not supported (this msmedcap reads version ",
                 kModelFolderVersion, ")");
  j.erase("msmedcap_model_folder");
  const fs::path root = fs::absolute(dir);
  if (j.contains("tokenizers") && j["tokenizers"].is_object()) {
    for (auto& [key, value] : j["tokenizers"].items()) {
      MSMEDCAP_CHECK(value.is_string(), path, ": tokenizers.", key, " must be a path");
      value = (root / value.get<std::string>()).lexically_normal().string();
    }
  }
  j["weights"] = config::Json::array({{{"path", root.string()}, {"prefix", ""}, {"format", "hf"}}});
  return j;
}

std::string model_folder_generation(const std::string& dir) {
  const std::string path = dir + "/generation_config.json";
  return fs::exists(path) ? path : "";
}

}  // namespace msmedcap::inference
