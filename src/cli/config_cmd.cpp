// msmedcap config [-c CFG]... [--set k=v]... [--keys]: resolve and print a config, or list every
// key with its meaning.
#include <cstdio>
#include <iostream>

#include "commands.h"

namespace msmedcap::cli {

namespace {
struct ConfigCommandOptions {
  ConfigOptions config;
  bool keys = false;
};
}  // namespace

void register_config(CLI::App& app, const GlobalOptions& globals) {
  auto options = std::make_shared<ConfigCommandOptions>();
  auto* cmd = app.add_subcommand("config", "resolve config files and overrides, validate them and print the result");
  add_config_options(cmd, options->config);
  cmd->add_flag("--keys", options->keys, "list every config key with its meaning");
  cmd->callback([options, &globals] {
    config::RunConfig cfg;
    if (options->keys) {
      for (const auto& [key, doc] : config::list_keys(cfg)) {
        std::printf("%-28s %s\n", key.c_str(), doc.c_str());
      }
      return;
    }
    const config::Json resolved = resolve_run_config(cfg, options->config, globals);
    std::cout << resolved.dump(2) << "\n";
  });
}

}  // namespace msmedcap::cli
