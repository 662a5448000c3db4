#include "msmedcap/io/run_folder.h"

#include <algorithm>
#include <filesystem>
#include <fstream>

#include "msmedcap/config/run_config.h"
#include "msmedcap/core/atomic_file.h"
#include "msmedcap/core/check.h"
#include "msmedcap/core/logging.h"
#include "msmedcap/io/checkpoint.h"

namespace msmedcap::io {

namespace fs = std::filesystem;

RunFolder::RunFolder(std::string path) : path_(std::move(path)) {
  MSMEDCAP_CHECK(!path_.empty(), "a run folder is needed (--run-dir)");
}

std::string RunFolder::config_file() const { return path_ + "/config.json"; }

std::string RunFolder::metrics_file() const { return path_ + "/metrics.jsonl"; }

std::string RunFolder::checkpoint(int64_t step) const { return checkpoint_folder(path_, step); }

std::string RunFolder::latest_checkpoint() const { return io::latest_checkpoint(path_); }

void RunFolder::layer_saved_config(std::vector<std::string>& config_files, const std::string& purpose) const {
  MSMEDCAP_CHECK(fs::exists(config_file()), path_, ": not a run folder (no config.json), which ", purpose, " needs");
  config_files.insert(config_files.begin(), config_file());
}

void RunFolder::load_after_weights(config::RunConfig& cfg) const {
  if (cfg.weights.empty()) {
    core::log_info("model", "{} started from random values: parts not in its checkpoint come from seed {}", path_,
                   cfg.runtime.seed);
    cfg.load.allow_missing.push_back("");
  }
  config::WeightsSource checkpoint;
  checkpoint.path = path_;
  cfg.weights.push_back(checkpoint);
}

void RunFolder::start(const config::Json& resolved) const {
  fs::create_directories(path_);
  MSMEDCAP_CHECK(latest_checkpoint().empty(), path_,
                 ": already holds a run with checkpoints; continue it with --resume or choose another --run-dir");
  core::write_file_atomic(config_file(), resolved.dump(2) + "\n");
  core::write_file_atomic(metrics_file(), "");
}

void RunFolder::rewind(int64_t step, const config::Json& resolved) const {
  std::ifstream in(metrics_file());
  std::string line, kept;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    const auto j = config::Json::parse(line, nullptr, false);
    if (!j.is_discarded() && j.value("step", int64_t{0}) <= step) kept += line + "\n";
  }
  core::write_file_atomic(metrics_file(), kept);
  core::write_file_atomic(config_file(), resolved.dump(2) + "\n");
}

void RunFolder::append_metrics(const config::Json& line) const {
  std::ofstream out(metrics_file(), std::ios::app);
  out << line.dump() << "\n";
  MSMEDCAP_CHECK(out.good(), metrics_file(), ": cannot append (disk full?)");
}

}  // namespace msmedcap::io
