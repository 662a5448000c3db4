#include "msmedcap/io/checkpoint.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>

#include "msmedcap/config/json_depth.h"
#include "msmedcap/core/atomic_file.h"
#include "msmedcap/core/check.h"

namespace msmedcap::io {
namespace {

namespace fs = std::filesystem;
constexpr const char* kFiles[] = {"model.safetensors", "optimizer.safetensors", "state.json", "config.json"};

fs::path checkpoints_dir(const std::string& run_dir) { return fs::path(run_dir) / "checkpoints"; }

std::string step_name(int64_t step) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "step-%09lld", static_cast<long long>(step));
  return buf;
}

void fsync_dir(const fs::path& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY);
  if (fd >= 0) {
    ::fsync(fd);
    ::close(fd);
  }
}

config::Json parse_json(const fs::path& file) {
  const std::string text = core::read_file(file.string());
  config::check_json_depth(text, file.string());
  try {
    return config::Json::parse(text);
  } catch (const config::Json::exception& e) {
    MSMEDCAP_FAIL(file.string(), ": malformed JSON (", e.what(), ")");
  }
}

/// The folder name `checkpoints/latest` holds, without its trailing newline ("" without the file).
std::string read_latest(const fs::path& root) {
  const fs::path pointer = root / "latest";
  if (!fs::exists(pointer)) return "";
  std::string name = core::read_file(pointer.string());
  while (!name.empty() && (name.back() == '\n' || name.back() == ' ')) name.pop_back();
  return name;
}

}  // namespace

std::string save_checkpoint(const std::string& run_dir, int64_t step, const Checkpoint& ckpt) {
  MSMEDCAP_CHECK(step >= 0, "checkpoint: negative step ", step);
  const fs::path root = checkpoints_dir(run_dir);
  std::error_code ec;
  fs::create_directories(root, ec);
  MSMEDCAP_CHECK(!ec, root.string(), ": cannot create the checkpoint folder: ", ec.message());
  const fs::path final_dir = root / step_name(step);
  const fs::path temp_dir = root / ("." + step_name(step) + ".tmp-" + std::to_string(::getpid()));
  fs::remove_all(temp_dir, ec);
  fs::create_directory(temp_dir, ec);
  MSMEDCAP_CHECK(!ec, temp_dir.string(), ": cannot create: ", ec.message());
  try {
    save_safetensors((temp_dir / kFiles[0]).string(), ckpt.model);
    save_safetensors((temp_dir / kFiles[1]).string(), ckpt.optimizer);
    core::write_file_atomic((temp_dir / kFiles[2]).string(), ckpt.state.dump(1) + "\n");
    core::write_file_atomic((temp_dir / kFiles[3]).string(), ckpt.config.dump(1) + "\n");
    fsync_dir(temp_dir);
    if (fs::exists(final_dir)) {
      const fs::path old = root / ("." + step_name(step) + ".old-" + std::to_string(::getpid()));
      fs::rename(final_dir, old);
      fs::rename(temp_dir, final_dir);
      fs::remove_all(old);
    } else {
      fs::rename(temp_dir, final_dir);
    }
    fsync_dir(root);
    core::write_file_atomic((root / "latest").string(), step_name(step) + "\n");
  } catch (const std::exception& e) {
    // A full disk, a file-size limit, EIO: the previous checkpoints and `latest` are untouched.
    fs::remove_all(temp_dir, ec);
    const std::string latest = read_latest(root);
    const std::string previous =
        latest.empty() ? "there is no earlier checkpoint" : "checkpoints/latest still names the intact " + latest;
    MSMEDCAP_FAIL(final_dir.string(), ": checkpoint not saved (", e.what(), "); ", previous);
  }
  return final_dir.string();
}

std::string latest_checkpoint(const std::string& run_dir) {
  const fs::path root = checkpoints_dir(run_dir);
  const fs::path pointer = root / "latest";
  const std::string name = read_latest(root);
  if (name.empty() && !fs::exists(pointer)) return "";
  MSMEDCAP_CHECK(name.rfind("step-", 0) == 0 && name.find('/') == std::string::npos, pointer.string(),
                 ": does not name a checkpoint ('", name, "')");
  const fs::path dir = root / name;
  for (const char* f : kFiles)
    MSMEDCAP_CHECK(fs::exists(dir / f), pointer.string(), ": names ", dir.string(), ", which lacks ", f);
  return dir.string();
}

std::string resolve_run_folder(const std::string& path) {
  if (!fs::exists(checkpoints_dir(path) / "latest")) return path;
  return latest_checkpoint(path);
}

std::string checkpoint_folder(const std::string& run_dir, int64_t step) {
  return (checkpoints_dir(run_dir) / step_name(step)).string();
}

Checkpoint load_checkpoint(const std::string& dir) {
  const fs::path d(dir);
  for (const char* f : kFiles) MSMEDCAP_CHECK(fs::exists(d / f), dir, ": incomplete checkpoint, no ", f);
  Checkpoint c;
  c.model = TensorStore::open((d / kFiles[0]).string()).load_all();
  c.optimizer = TensorStore::open((d / kFiles[1]).string()).load_all();
  c.state = parse_json(d / kFiles[2]);
  c.config = parse_json(d / kFiles[3]);
  return c;
}

std::vector<std::string> prune_checkpoints(const std::string& run_dir, int64_t keep,
                                           const std::vector<std::string>& protect) {
  const fs::path root = checkpoints_dir(run_dir);
  std::vector<std::string> removed;
  if (!fs::exists(root)) return removed;
  std::vector<fs::path> steps;
  for (const auto& e : fs::directory_iterator(root)) {
    const std::string name = e.path().filename().string();
    if (!e.is_directory()) continue;
    if (name.rfind(".step-", 0) == 0) {  // a crash's leftovers
      fs::remove_all(e.path());
      removed.push_back(e.path().string());
    } else if (name.rfind("step-", 0) == 0) {
      steps.push_back(e.path());
    }
  }
  std::sort(steps.begin(), steps.end());
  const int64_t drop = static_cast<int64_t>(steps.size()) - std::max<int64_t>(keep, 1);
  for (int64_t i = 0; i < drop; ++i) {
    const auto& p = steps[static_cast<size_t>(i)];
    const bool keep_it = std::any_of(protect.begin(), protect.end(),
                                     [&](const std::string& x) { return fs::path(x).filename() == p.filename(); });
    if (keep_it) continue;
    // Renamed away first: a kill during the removal leaves a hidden leftover (cleaned above on
    // the next call), never a step folder with some of its files gone.
    const fs::path doomed = root / ("." + p.filename().string() + ".pruned-" + std::to_string(::getpid()));
    fs::rename(p, doomed);
    fs::remove_all(doomed);
    removed.push_back(p.string());
  }
  return removed;
}

}  // namespace msmedcap::io
