// msmedcap inspect FILE_OR_DIR [--json]: the tensors of a safetensors file, sharded checkpoint
// or model directory, with dtype, shape, bytes and totals.
#include <cstdio>
#include <iostream>

#include "commands.h"
#include "msmedcap/core/logging.h"
#include "msmedcap/io/tensor_store.h"

namespace msmedcap::cli {

namespace {
struct InspectOptions {
  std::string path;
  bool json = false;
};

void run_inspect(const InspectOptions& options, const GlobalOptions& globals) {
  if (!globals.log_level.empty()) core::init_logging(globals.log_level);
  const io::TensorStore store = io::TensorStore::open(options.path);
  const config::Json listing = io::describe(store);
  if (options.json) {
    std::cout << listing.dump(2) << "\n";
    return;
  }
  size_t width = 4;
  for (const auto& t : listing["tensors"]) width = std::max(width, t["name"].get<std::string>().size());
  std::printf("%-*s  %-5s  %-22s  %s\n", static_cast<int>(width), "name", "dtype", "shape", "bytes");
  for (const auto& t : listing["tensors"]) {
    std::string shape = "[";
    for (size_t i = 0; i < t["shape"].size(); ++i) {
      shape += (i ? ", " : "") + std::to_string(t["shape"][i].get<int64_t>());
    }
    shape += "]";
    std::printf("%-*s  %-5s  %-22s  %llu\n", static_cast<int>(width), t["name"].get<std::string>().c_str(),
                t["dtype"].get<std::string>().c_str(), shape.c_str(),
                static_cast<unsigned long long>(t["bytes"].get<uint64_t>()));
  }
  const auto bytes = listing["total_bytes"].get<uint64_t>();
  std::printf("%zu tensors, %lld parameters, %llu bytes (%.2f MiB) in %zu file(s)\n", listing["tensors"].size(),
              static_cast<long long>(listing["total_parameters"].get<int64_t>()),
              static_cast<unsigned long long>(bytes), static_cast<double>(bytes) / (1 << 20), listing["files"].size());
  for (const auto& item : listing["metadata"].items()) {
    std::printf("metadata %s = %s\n", item.key().c_str(), item.value().get<std::string>().c_str());
  }
}
}  // namespace

void register_inspect(CLI::App& app, const GlobalOptions& globals) {
  auto options = std::make_shared<InspectOptions>();
  auto* cmd =
      app.add_subcommand("inspect", "list the tensors of a safetensors file, sharded checkpoint or model directory");
  cmd->add_option("path", options->path, "file.safetensors, *.index.json or a model directory")->required();
  cmd->add_flag("--json", options->json, "print JSON instead of a table");
  cmd->callback([options, &globals] { run_inspect(*options, globals); });
}

}  // namespace msmedcap::cli
