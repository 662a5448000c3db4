#pragma once
/// The msmedcap command line: one file per subcommand, each registering itself on the app.
/// Commands only parse, call the library and report; all logic lives in the library.

#include <CLI/CLI.hpp>

#include <functional>
#include <string>
#include <vector>

#include "msmedcap/config/config_io.h"
#include "msmedcap/config/run_config.h"
#include "msmedcap/data/datasets.h"

namespace msmedcap::cli {

/// Options shared by every command that takes a config:
/// `-c CFG [-c CFG2] [--set k=v]... [--dump-config]` (and the global --device/--threads).
struct ConfigOptions {
  std::vector<std::string> files;
  std::vector<std::string> overrides;
  bool dump_config = false;
  std::string model_dir;  ///< --model MODEL_DIR: a model folder layered under the -c files
  /// --generate FILE (caption): a generation file (config::read_generate_file) set over the -c
  /// files, under --set.
  std::string generate_file;
};

/// Global options given before or after the subcommand.
struct GlobalOptions {
  std::string log_level;
  std::string device;
  std::string dtype;  ///< runtime.dtype
  int64_t threads = -1;
  std::string allocator;  ///< what core::keep_freed_memory did at start (logged at debug level)
};

/// Adds -c/--config, --set and --dump-config to `command`.
void add_config_options(CLI::App* command, ConfigOptions& options);

/// Adds --model MODEL_DIR (a folder `msmedcap export` wrote: its config, weights, tokenizers and
/// generation settings, under the -c files).
void add_model_option(CLI::App* command, ConfigOptions& options);

/// Resolves the layered config (a model folder with its generation settings, the files,
/// --generate, --set, then the global flags), applies the runtime
/// section (log level, threads with flush-to-zero) and returns the resolved JSON.
config::Json resolve_run_config(config::RunConfig& config, const ConfigOptions& options, const GlobalOptions& globals);

/// Inference commands (caption, retrieve): `--run DIR` names a training run folder, whose
/// config.json is read first (under the -c files) and whose latest checkpoint is loaded after
/// the config's weights.
void add_run_option(CLI::App* command, std::string& run_dir);
config::Json resolve_inference_config(config::RunConfig& config, ConfigOptions options, const std::string& run_dir,
                                      const GlobalOptions& globals);

/// --dataset data|val_data: every sample of that config section, its sources read in order.
std::vector<data::Sample> read_config_dataset(const config::RunConfig& config, const std::string& section);

/// Each subcommand file defines one of these; main.cpp calls them all.
void register_inspect(CLI::App& app, const GlobalOptions& globals);
void register_config(CLI::App& app, const GlobalOptions& globals);
void register_forward(CLI::App& app, const GlobalOptions& globals);
void register_synth(CLI::App& app, const GlobalOptions& globals);
void register_decode_image(CLI::App& app, const GlobalOptions& globals);
void register_tokenize(CLI::App& app, const GlobalOptions& globals);
void register_train_tokenizer(CLI::App& app, const GlobalOptions& globals);
void register_extract_features(CLI::App& app, const GlobalOptions& globals);
void register_bench(CLI::App& app, const GlobalOptions& globals);
void register_train(CLI::App& app, const GlobalOptions& globals);
void register_merge(CLI::App& app, const GlobalOptions& globals);
void register_evaluate(CLI::App& app, const GlobalOptions& globals);
void register_caption(CLI::App& app, const GlobalOptions& globals);
void register_retrieve(CLI::App& app, const GlobalOptions& globals);
void register_plot(CLI::App& app, const GlobalOptions& globals);
void register_report(CLI::App& app, const GlobalOptions& globals);
void register_baseline(CLI::App& app, const GlobalOptions& globals);
void register_nearest(CLI::App& app, const GlobalOptions& globals);
void register_compare(CLI::App& app, const GlobalOptions& globals);
void register_export(CLI::App& app, const GlobalOptions& globals);

}  // namespace msmedcap::cli
