#pragma once
/// A training run's folder (docs/ARCHITECTURE.md, "On-disk formats"):
///   RUN/config.json    the resolved config the run trains with (rewritten on resume)
///   RUN/metrics.jsonl  one JSON line per logged step and per validation
///   RUN/checkpoints/   one folder per save and `latest` (io/checkpoint.h)
/// `train` writes it; `train --resume`, `caption --run`, `retrieve --run` and
/// `weights: [{"path": RUN}]` read it.

#include <cstdint>
#include <string>
#include <vector>

#include "msmedcap/config/fields.h"

namespace msmedcap::config {
struct RunConfig;
}

namespace msmedcap::io {

class RunFolder {
 public:
  explicit RunFolder(std::string path);

  const std::string& path() const { return path_; }
  std::string config_file() const;   ///< RUN/config.json
  std::string metrics_file() const;  ///< RUN/metrics.jsonl
  /// The folder of checkpoint `step`, saved or not.
  std::string checkpoint(int64_t step) const;
  /// The checkpoint `latest` names, or "" before the first save (throws when it is incomplete).
  std::string latest_checkpoint() const;
  bool has_checkpoint() const { return !latest_checkpoint().empty(); }

  /// Puts the run's saved config first among `config_files` (under them, so -c files and --set
  /// still win); `purpose` names the flag in the error when the folder holds no config.json.
  void layer_saved_config(std::vector<std::string>& config_files, const std::string& purpose) const;
  /// Adds the latest checkpoint to `cfg.weights`, after the config's own. A run that started
  /// without weights drew its frozen parts from runtime.seed and saved only what it trained:
  /// then the missing parts are allowed (the same seed gives them back).
  void load_after_weights(config::RunConfig& cfg) const;

  /// A new run: creates the folder, refuses one that already holds checkpoints, writes the
  /// config and an empty metrics log.
  void start(const config::Json& resolved) const;
  /// A resumed run at `step`: the metrics log keeps the lines up to `step` (later ones were lost
  /// work) and the config is rewritten.
  void rewind(int64_t step, const config::Json& resolved) const;
  /// Appends one line to the metrics log (an error when the disk refuses it).
  void append_metrics(const config::Json& line) const;

 private:
  std::string path_;
};

}  // namespace msmedcap::io
