// msmedcap extract-features -c RUN.json --out DIR [--branch sam|clip ...] [--batch-size N]:
// run the frozen encoders once over data.sources and cache their outputs (fp16 safetensors).
#include <iostream>

#include "commands.h"
#include "msmedcap/core/device.h"
#include "msmedcap/core/logging.h"
#include "msmedcap/inference/features.h"
#include "msmedcap/inference/run_setup.h"

namespace msmedcap::cli {

void register_extract_features(CLI::App& app, const GlobalOptions& globals) {
  struct Options {
    ConfigOptions config;
    inference::ExtractOptions extract;
    std::vector<std::string> branches;
    int64_t shard_mb = 1024;
  };
  auto o = std::make_shared<Options>();
  auto* cmd = app.add_subcommand("extract-features", "cache the frozen encoders' outputs for a dataset");
  add_config_options(cmd, o->config);
  add_model_option(cmd, o->config);
  cmd->add_option("--out", o->extract.out, "cache folder (one per branch under it when both are cached)")->required();
  cmd->add_option("--branch", o->branches, "branches to cache: sam (default), clip (repeatable)")
      ->check(CLI::IsMember({"sam", "clip"}));
  cmd->add_option("--batch-size", o->extract.batch_size, "images per encoder call")->check(CLI::PositiveNumber);
  cmd->add_option("--workers", o->extract.workers, "decoding threads")->check(CLI::NonNegativeNumber);
  cmd->add_option("--shard-mb", o->shard_mb, "largest shard size in MiB")->check(CLI::PositiveNumber);
  cmd->callback([o, &globals] {
    config::RunConfig run;
    const config::Json resolved = resolve_run_config(run, o->config, globals);
    if (o->config.dump_config) {
      std::cout << resolved.dump(2) << "\n";
      return;
    }
    if (run.weights.empty())
      core::log_warn("extract", "no weights in the config: the encoders are randomly initialised");
    auto model = inference::load_inference_model(run, "extract-features");
    o->extract.device = core::parse_device(run.runtime.device);
    if (!o->branches.empty()) {
      o->extract.branches.clear();
      for (const auto& b : o->branches)
        o->extract.branches.push_back(config::parse_branch(b, "extract-features: --branch"));
    }
    o->extract.shard_bytes = static_cast<uint64_t>(o->shard_mb) << 20;
    const auto report = inference::extract_features(*model, run.data, run.loader.max_bad_fraction, o->extract);
    core::log_info("extract", "{} images cached in {} ({} skipped), {:.1f} s, {:.2f} img/s", report.images,
                   o->extract.out, report.skipped, report.seconds,
                   report.seconds > 0 ? static_cast<double>(report.images) / report.seconds : 0.0);
  });
}

}  // namespace msmedcap::cli
