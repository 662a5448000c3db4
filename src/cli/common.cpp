#include <iostream>

#include "commands.h"
#include "msmedcap/core/logging.h"
#include "msmedcap/core/threads.h"

namespace msmedcap::cli {

void add_config_options(CLI::App* command, ConfigOptions& options) {
  command->add_option("-c,--config", options.files,
                      "config file (JSON); several merge left to right")
      ->type_name("FILE");
  command->add_option("--set", options.overrides, "override a config key: --set a.b=value")
      ->type_name("KEY=VALUE");
  command->add_flag("--dump-config", options.dump_config,
                    "print the resolved config as JSON and exit");
}

config::Json resolve_run_config(config::RunConfig& config, const ConfigOptions& options,
                                const GlobalOptions& globals) {
  config::ConfigSources sources{options.files, options.overrides};
  // Command-line flags win over files and --set.
  if (!globals.log_level.empty()) sources.overrides.push_back("runtime.log_level=" + globals.log_level);
  if (!globals.device.empty()) sources.overrides.push_back("runtime.device=" + globals.device);
  if (globals.threads >= 0) {
    sources.overrides.push_back("runtime.threads=" + std::to_string(globals.threads));
  }
  const config::Json resolved = config::resolve_config(config, sources);
  core::init_logging(config.runtime.log_level);
  const int threads = core::configure_threads(config.runtime.threads);
  core::log_debug("runtime", "{} intra-op threads, flush-to-zero on", threads);
  return resolved;
}

}  // namespace msmedcap::cli
