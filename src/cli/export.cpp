// msmedcap export (--run DIR | --model DIR | -c CFG...) --out MODEL_DIR [--format msmedcap|hf]
//   [--generate GEN.json] [--shard-mb N] [--dtype fp32|bf16|fp16]: a self-contained model folder,
//   its weights stored in the dtype they are loaded in (runtime.dtype / --dtype)
//   (inference/model_folder.h) that caption, forward, retrieve and train read with --model.
#include <iostream>

#include "commands.h"
#include "msmedcap/core/logging.h"
#include "msmedcap/inference/model_folder.h"
#include "msmedcap/inference/run_setup.h"

namespace msmedcap::cli {

void register_export(CLI::App& app, const GlobalOptions& globals) {
  struct Options {
    ConfigOptions config;
    std::string run_dir;
    inference::ExportOptions exp;
    int64_t shard_mb = 5000;
  };
  auto o = std::make_shared<Options>();
  auto* cmd = app.add_subcommand("export", "write a self-contained model folder: config, every weight, tokenizers");
  add_config_options(cmd, o->config);
  add_run_option(cmd, o->run_dir);
  add_model_option(cmd, o->config);
  cmd->add_option("--out", o->exp.out, "model folder to write (must not exist)")->required();
  cmd->add_option("--format", o->exp.format, "msmedcap (any model) or hf (Blip2ForConditionalGeneration, CLIP-only)")
      ->capture_default_str();
  cmd->add_option("--generate", o->exp.generate_file, "generation settings to store (configs/generate/ JSON)");
  cmd->add_option("--shard-mb", o->shard_mb, "largest weight file in MB (HF: 5000)")->check(CLI::PositiveNumber);
  cmd->callback([o, &globals] {
    config::RunConfig cfg;
    const config::Json resolved = resolve_inference_config(cfg, o->config, o->run_dir, globals);
    if (o->config.dump_config) {
      std::cout << resolved.dump(2) << "\n";
      return;
    }
    o->exp.max_shard_bytes = static_cast<uint64_t>(o->shard_mb) * 1'000'000;
    for (const auto& f : o->config.files) o->exp.provenance.push_back("config file: `" + f + "`");
    if (!o->run_dir.empty()) o->exp.provenance.push_back("run folder: `" + o->run_dir + "` (its latest checkpoint)");
    if (!o->config.model_dir.empty()) o->exp.provenance.push_back("model folder: `" + o->config.model_dir + "`");
    auto model = inference::load_inference_model(cfg, "export");
    inference::export_model(*model, cfg, o->exp);
    core::log_info("export", "wrote {} ({} layout)", o->exp.out, o->exp.format);
  });
}

}  // namespace msmedcap::cli
