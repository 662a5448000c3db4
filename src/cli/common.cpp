#include <optional>

#include "commands.h"
#include "msmedcap/config/generate_config.h"
#include "msmedcap/core/check.h"
#include "msmedcap/core/logging.h"
#include "msmedcap/core/threads.h"
#include "msmedcap/inference/model_folder.h"
#include "msmedcap/io/run_folder.h"

namespace msmedcap::cli {

void add_config_options(CLI::App* command, ConfigOptions& options) {
  command->add_option("-c,--config", options.files, "config file (JSON); several merge left to right")
      ->type_name("FILE");
  command->add_option("--set", options.overrides, "override a config key: --set a.b=value")->type_name("KEY=VALUE");
  command->add_flag("--dump-config", options.dump_config, "print the resolved config as JSON and exit");
}

void add_model_option(CLI::App* command, ConfigOptions& options) {
  command->add_option("--model", options.model_dir, "model folder written by msmedcap export")->type_name("DIR");
}

config::Json resolve_run_config(config::RunConfig& config, const ConfigOptions& options, const GlobalOptions& globals) {
  config::ConfigSources sources{options.files, options.overrides, {}};
  if (!options.model_dir.empty()) {
    sources.layers.push_back({options.model_dir + "/config.json", inference::model_folder_layer(options.model_dir)});
    const std::string generation = inference::model_folder_generation(options.model_dir);
    if (!generation.empty()) {
      config::Json layer = config::Json::object();
      layer["generate"] = config::to_json(config::read_generate_file(generation));
      sources.layers.push_back({generation, layer});
    }
  }
  if (!options.generate_file.empty()) {
    // Over the -c files, under the user's own --set.
    std::vector<std::string> keys;
    const config::Json generate = config::to_json(config::read_generate_file(options.generate_file));
    for (const auto& [key, value] : generate.items())
      keys.push_back("generate." + key + "=" + (value.is_string() ? value.get<std::string>() : value.dump()));
    sources.overrides.insert(sources.overrides.begin(), keys.begin(), keys.end());
  }
  // Command-line flags win over files and --set.
  if (!globals.log_level.empty()) sources.overrides.push_back("runtime.log_level=" + globals.log_level);
  if (!globals.device.empty()) sources.overrides.push_back("runtime.device=" + globals.device);
  if (!globals.dtype.empty()) sources.overrides.push_back("runtime.dtype=" + globals.dtype);
  if (globals.threads >= 0) {
    sources.overrides.push_back("runtime.threads=" + std::to_string(globals.threads));
  }
  const config::Json resolved = config::resolve_config(config, sources);
  core::init_logging(config.runtime.log_level);
  const int threads = core::configure_threads(config.runtime.threads);
  core::log_debug("runtime", "{} intra-op threads, flush-to-zero on; {}", threads, globals.allocator);
  // LibTorch's CPU bf16 products are fast only with AVX512-BF16 (oneDNN uses it); without it
  // they take a slow path, which the decoder avoids (packed_linear.h) but the encoders do not.
  if (config.runtime.dtype == "bf16" && config.runtime.device == "cpu" && !__builtin_cpu_supports("avx512bf16")) {
    core::log_warn("runtime",
                   "bf16 on a CPU without AVX512-BF16: the decoder reads bf16 weights in msmedcap's own product, "
                   "but the encoders' and Q-Formers' bf16 products are LibTorch's slow path (21x float32 at full "
                   "size); for captioning here, int8 or fp32 are faster (docs/PERFORMANCE.md)");
  }
  return resolved;
}

void add_run_option(CLI::App* command, std::string& run_dir) {
  command->add_option("--run", run_dir, "training run folder: its config.json and latest checkpoint")->type_name("DIR");
}

config::Json resolve_inference_config(config::RunConfig& config, ConfigOptions options, const std::string& run_dir,
                                      const GlobalOptions& globals) {
  std::optional<io::RunFolder> run;
  if (!run_dir.empty()) {
    run.emplace(run_dir);
    run->layer_saved_config(options.files, "--run");
  }
  MSMEDCAP_CHECK(!options.files.empty() || !options.model_dir.empty(), "give --run DIR, --model DIR or -c CONFIG");
  const config::Json resolved = resolve_run_config(config, options, globals);
  if (run) run->load_after_weights(config);
  return resolved;
}

std::vector<data::Sample> read_config_dataset(const config::RunConfig& config, const std::string& section) {
  MSMEDCAP_CHECK(section == "data" || section == "val_data", "--dataset must be data or val_data, got ", section);
  return data::read_datasets(section == "data" ? config.data : config.val_data, section);
}

}  // namespace msmedcap::cli
