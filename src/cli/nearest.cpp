// msmedcap nearest (--run DIR | -c CFG...) --out PRED.jsonl [--train-dataset data] [--dataset val_data]:
// the nearest-neighbour caption baseline: each image of --dataset gets the caption of the
// closest --train-dataset image under the frozen encoders' pooled features.
#include <iostream>

#include "commands.h"
#include "msmedcap/core/atomic_file.h"
#include "msmedcap/core/logging.h"
#include "msmedcap/inference/nearest.h"
#include "msmedcap/inference/run_setup.h"

namespace msmedcap::cli {
namespace {

struct NearestOptions {
  ConfigOptions config;
  std::string run_dir, train_dataset = "data", dataset = "val_data", out;
  int64_t batch_size = 0;
};

void run(const NearestOptions& o, const GlobalOptions& globals) {
  config::RunConfig cfg;
  const config::Json resolved = resolve_inference_config(cfg, o.config, o.run_dir, globals);
  if (o.config.dump_config) {
    std::cout << resolved.dump(2) << "\n";
    return;
  }
  auto model = inference::load_inference_model(cfg, "nearest");
  const int64_t batch = o.batch_size > 0 ? o.batch_size : cfg.loader.batch_size;
  const auto train = read_config_dataset(cfg, o.train_dataset);
  const auto queries = read_config_dataset(cfg, o.dataset);
  const auto keys = inference::pooled_features(*model, train, cfg.data.transform, batch);
  const auto found = inference::pooled_features(*model, queries, cfg.data.transform, batch);
  for (const auto& problem : keys.unreadable) core::log_warn("nearest", "training image skipped: {}", problem);
  MSMEDCAP_CHECK(found.unreadable.empty(), "nearest: ", found.unreadable.size(),
                 " images to caption could not be read, the first: ", found.unreadable.front());
  const auto nearest = inference::nearest_rows(found.features, keys.features);
  std::string lines;
  for (size_t i = 0; i < nearest.size(); ++i) {
    const auto& query = queries[found.rows[i]];
    const auto& match = train[keys.rows[static_cast<size_t>(nearest[i])]];
    lines += config::Json{{"id", query.id}, {"caption", match.captions.front()}, {"nearest", match.id}}.dump() + "\n";
  }
  core::write_file_atomic(o.out, lines);
  core::log_info("nearest", "{} images captioned from their nearest of {} training images -> {}", nearest.size(),
                 keys.rows.size(), o.out);
}

}  // namespace

void register_nearest(CLI::App& app, const GlobalOptions& globals) {
  auto o = std::make_shared<NearestOptions>();
  auto* cmd = app.add_subcommand(
      "nearest", "a baseline: the caption of the nearest training image under the frozen encoders' pooled features");
  add_config_options(cmd, o->config);
  add_model_option(cmd, o->config);
  add_run_option(cmd, o->run_dir);
  cmd->add_option("--train-dataset", o->train_dataset, "the config section whose captions are looked up")
      ->capture_default_str();
  cmd->add_option("--dataset", o->dataset, "the config section whose images are captioned")->capture_default_str();
  cmd->add_option("--out", o->out, "predictions JSONL {\"id\", \"caption\", \"nearest\"}")->required();
  cmd->add_option("--batch-size", o->batch_size, "images per encoder batch (default: loader.batch_size)")
      ->check(CLI::PositiveNumber);
  cmd->callback([o, &globals] { run(*o, globals); });
}

}  // namespace msmedcap::cli
