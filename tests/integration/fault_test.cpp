// Faults against the real binary, on the tiny model and synthetic data:
// - SIGKILL at random moments, several times, each restart with --auto-resume: every checkpoint
//   on disk loads, at most one save interval of steps is lost per kill, and the finished run's
//   loss curve and parameters equal an uninterrupted run's;
// - a file-size limit (ulimit -f) reached while a checkpoint is written: the previous checkpoint
//   stays byte for byte, the run stops with one clear error, and resuming afterwards works;
// - corrupt, empty, missing and NaN images in the middle of a dataset: skipped and named within
//   loader.max_bad_fraction, a named error beyond it;
// - truncated and damaged checkpoints: train --resume refuses them in one line naming the file;
// - NaN in cached encoder features: the sample is skipped, the parameters stay finite.
// MSMEDCAP_FAULT_KILLS (default 6) and MSMEDCAP_FAULT_SEED set the kill trials (fewer when the
// run finishes first) and their moments, which follow the run's logged progress.
#include <gtest/gtest.h>

#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <random>
#include <thread>

#include <opencv2/imgcodecs.hpp>

#include "msmedcap/config/config_io.h"
#include "msmedcap/data/feature_cache.h"
#include "msmedcap/data/datasets.h"
#include "msmedcap/io/checkpoint.h"
#include "msmedcap/io/safetensors.h"
#include "msmedcap/models/provenance.h"
#include "test_utils.h"
#include "train_helpers.h"

namespace msmedcap {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

/// A started msmedcap process; stdout and stderr go to `log`. `file_size_limit` (bytes) is the
/// child's RLIMIT_FSIZE, as `ulimit -f` sets it.
pid_t spawn(const std::vector<std::string>& args, const std::string& log, rlim_t file_size_limit = RLIM_INFINITY) {
  std::vector<std::string> argv{MSMEDCAP_BINARY};
  argv.insert(argv.end(), args.begin(), args.end());
  std::vector<char*> cargv;
  for (auto& a : argv) cargv.push_back(a.data());
  cargv.push_back(nullptr);
  const pid_t pid = fork();
  if (pid == 0) {  // only async-signal-safe calls from here on
    const int fd = open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd < 0) _exit(126);
    dup2(fd, 1);
    dup2(fd, 2);
    const int null_in = open("/dev/null", O_RDONLY);
    if (null_in >= 0) dup2(null_in, 0);
    const rlimit limit{file_size_limit, file_size_limit};
    if (file_size_limit != RLIM_INFINITY && setrlimit(RLIMIT_FSIZE, &limit) != 0) _exit(126);
    execv(cargv[0], cargv.data());
    _exit(127);
  }
  return pid;
}

/// Exit code, or 128 + the signal that ended it.
int wait_exit(pid_t pid) {
  int status = 0;
  while (waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) return -1;
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/// Whether `pid` has not ended yet (an ended child stays unreaped for wait_exit).
bool running(pid_t pid) {
  siginfo_t info{};
  return waitid(P_PID, static_cast<id_t>(pid), &info, WEXITED | WNOHANG | WNOWAIT) == 0 && info.si_pid == 0;
}

/// Whether a checkpoint's temporary folder exists: one that process `pid` writes, or any (0).
bool has_temp_checkpoint(const std::string& run_dir, pid_t pid = 0) {
  const std::string suffix = ".tmp-" + std::to_string(pid);
  std::error_code ec;
  for (fs::directory_iterator it(run_dir + "/checkpoints", ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (name.rfind(".step-", 0) != 0) continue;
    if (pid == 0 ||
        (name.size() > suffix.size() && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0))
      return true;
  }
  return false;
}

/// Every step-* folder loads whole, with the step its name says; returns the step `latest`
/// names (0 without one).
int64_t check_checkpoints(const std::string& run_dir) {
  const fs::path root = fs::path(run_dir) / "checkpoints";
  if (!fs::exists(root)) return 0;
  for (const auto& e : fs::directory_iterator(root)) {
    const std::string name = e.path().filename().string();
    if (name.rfind("step-", 0) != 0) continue;
    try {
      const auto ckpt = io::load_checkpoint(e.path().string());
      EXPECT_EQ(ckpt.state.at("step").get<int64_t>(), std::stoll(name.substr(5))) << e.path();
      EXPECT_FALSE(ckpt.model.empty()) << e.path();
    } catch (const std::exception& ex) {
      ADD_FAILURE() << "a corrupt checkpoint after a kill: " << ex.what();
    }
  }
  const std::string latest = io::latest_checkpoint(run_dir);  // throws if `latest` is broken
  return latest.empty() ? 0 : io::load_checkpoint(latest).state.at("step").get<int64_t>();
}

/// The trainer's configuration for the fault runs: 24 samples, 3 batches an epoch (the order
/// changes per epoch), augmentation and two loader workers, all of which resume must restore.
config::RunConfig fault_run(const std::string& train_jsonl, int64_t max_steps, int64_t save_every) {
  auto cfg = tiny_run(train_jsonl, "stage1_clip");
  cfg.data.samples_per_epoch = 0;
  cfg.data.transform.augment = true;
  cfg.loader.workers = 2;
  cfg.train.max_steps = max_steps;
  cfg.train.save_every = save_every;
  cfg.train.keep = 2;
  cfg.runtime.threads = 2;
  return cfg;
}

std::string env_or(const char* name, const std::string& fallback) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' ? v : fallback;
}

TEST(Faults, SigkillAtRandomMomentsLosesAtMostOneSaveIntervalAndResumesExactly) {
  testing::TempDir dir;
  constexpr int64_t kSteps = 24, kSaveEvery = 3;
  const auto cfg_path = write_config(dir, "run.json", fault_run(make_synth(dir.file("synth"), 24), kSteps, kSaveEvery));
  const auto args = [&](const std::string& run) {
    return std::vector<std::string>{"train", "-c", cfg_path, "--run-dir", dir.file(run), "--auto-resume"};
  };

  const auto start = Clock::now();
  ASSERT_EQ(wait_exit(spawn(args("full"), dir.file("full.log"))), 0) << testing::read_text(dir.file("full.log"));
  const double full_seconds = std::chrono::duration<double>(Clock::now() - start).count();
  const auto reference = step_losses(dir.file("full"));
  ASSERT_EQ(reference.size(), static_cast<size_t>(kSteps));

  const int kills = std::stoi(env_or("MSMEDCAP_FAULT_KILLS", "6"));
  const auto seed =
      static_cast<uint32_t>(std::stoul(env_or("MSMEDCAP_FAULT_SEED", std::to_string(std::random_device()()))));
  SCOPED_TRACE("MSMEDCAP_FAULT_SEED=" + std::to_string(seed));
  std::mt19937 rng(seed);
  const auto last_logged = [&] {
    const auto logged = step_losses(dir.file("split"));
    return logged.empty() ? int64_t{0} : logged.rbegin()->first;
  };
  // Moments are set by the run's progress, not by the clock: under a loaded host (ctest runs
  // tests side by side) a run's speed varies several-fold, and a moment drawn from the
  // uninterrupted run's time could fall after the whole run. A random delay of up to one step's
  // time (measured on the uninterrupted run) spreads the kill over the step and its save.
  std::uniform_real_distribution<double> within_step(0.0, full_seconds / kSteps);
  const auto patience = std::chrono::duration<double>(10.0 * full_seconds + 30.0);
  int killed = 0, in_save = 0, finished_first = 0;
  int64_t most_lost = 0;
  for (int trial = 0; trial < kills; ++trial) {
    const int64_t done_before = last_logged();
    if (done_before >= kSteps - 1) break;  // too little left to interrupt
    // Even trials kill a random time after a random step (from where this restart resumes,
    // so during loading too, to the last but one); odd trials aim at a checkpoint being written
    // (this process's temporary folder exists; an earlier kill's may linger until the next save).
    const int64_t target = std::uniform_int_distribution<int64_t>(done_before, kSteps - 2)(rng);
    const double delay = within_step(rng);
    const pid_t pid = spawn(args("split"), dir.file("split.log"));
    const auto give_up = Clock::now() + patience;
    bool aimed = false;
    while (Clock::now() < give_up && running(pid)) {
      if (trial % 2 == 1 ? has_temp_checkpoint(dir.file("split"), pid) : last_logged() >= target) {
        aimed = trial % 2 == 1;
        break;
      }
      std::this_thread::sleep_for(std::chrono::microseconds(trial % 2 == 1 ? 200 : 2000));
    }
    if (trial % 2 == 0) std::this_thread::sleep_for(std::chrono::duration<double>(delay));
    kill(pid, SIGKILL);
    const int code = wait_exit(pid);
    if (code == 0) {  // the run ended before the kill: nothing left to interrupt
      ++finished_first;
      break;
    }
    ASSERT_EQ(code, 128 + SIGKILL) << testing::read_text(dir.file("split.log"));
    ++killed;
    in_save += aimed || has_temp_checkpoint(dir.file("split"), pid);
    const int64_t saved = check_checkpoints(dir.file("split"));
    const auto logged = step_losses(dir.file("split"));
    const int64_t done = logged.empty() ? 0 : logged.rbegin()->first;
    EXPECT_LE(done - saved, kSaveEvery) << "trial " << trial << ": " << done << " steps logged, checkpoint at "
                                        << saved;
    most_lost = std::max(most_lost, done - saved);
  }
  const int final_code = wait_exit(spawn(args("split"), dir.file("split.log")));
  ASSERT_EQ(final_code, 0) << testing::read_text(dir.file("split.log"));
  EXPECT_EQ(step_losses(dir.file("split")), reference);  // bit-exact, every step
  const auto a = checkpoint_model(dir.file("full")), b = checkpoint_model(dir.file("split"));
  ASSERT_EQ(a.size(), b.size());
  for (const auto& [name, t] : a) EXPECT_TRUE(torch::equal(t, b.at(name))) << name;
  EXPECT_FALSE(has_temp_checkpoint(dir.file("split")));  // a crash's leftovers are cleared
  std::cout << "[faults] seed " << seed << ": " << killed << " kills (" << in_save
            << " while a checkpoint was written), " << finished_first << " run finished first; at most " << most_lost
            << " steps lost (save_every " << kSaveEvery << "); an uninterrupted run takes " << full_seconds << " s\n";
  EXPECT_GE(killed, 1);
}

std::map<std::string, std::string> files_of(const std::string& dir) {
  std::map<std::string, std::string> out;
  for (const auto& e : fs::directory_iterator(dir))
    out[e.path().filename().string()] = testing::read_text(e.path().string());
  return out;
}

TEST(Faults, FileSizeLimitDuringACheckpointKeepsThePreviousOneAndStops) {
  testing::TempDir dir;
  auto cfg = fault_run(make_synth(dir.file("synth"), 24), 6, 3);
  cfg.train.optimizer.min_lr = cfg.train.optimizer.lr;  // a constant rate: max_steps changes nothing else
  const auto cfg_path = write_config(dir, "run.json", cfg);
  const auto train = [&](const std::string& run, int64_t steps, rlim_t limit = RLIM_INFINITY) {
    const std::string log = dir.file(run + ".log");
    fs::remove(log);
    const int code = wait_exit(spawn({"train", "-c", cfg_path, "--run-dir", dir.file(run), "--auto-resume", "--set",
                                      "train.max_steps=" + std::to_string(steps)},
                                     log, limit));
    return std::make_pair(code, testing::read_text(log));
  };
  ASSERT_EQ(train("full", 6).first, 0);
  ASSERT_EQ(train("run", 3).first, 0);
  const std::string step3 = io::latest_checkpoint(dir.file("run"));
  const auto before = files_of(step3);
  // Half the model file: the checkpoint at step 6 cannot be written, everything else can.
  const auto limit = static_cast<rlim_t>(fs::file_size(step3 + "/model.safetensors") / 2);
  ASSERT_GT(limit, fs::file_size(dir.file("run/config.json")) * 4);

  const auto [code, err] = train("run", 6, limit);
  EXPECT_EQ(code, 1) << err;
  EXPECT_NE(err.find("msmedcap: error: " + io::checkpoint_folder(dir.file("run"), 6) + ": checkpoint not saved"),
            std::string::npos)
      << err;
  EXPECT_NE(err.find("File too large"), std::string::npos) << err;
  EXPECT_NE(err.find("checkpoints/latest still names the intact step-000000003"), std::string::npos) << err;
  EXPECT_EQ(io::latest_checkpoint(dir.file("run")), step3);
  EXPECT_EQ(files_of(step3), before);  // byte for byte
  EXPECT_FALSE(has_temp_checkpoint(dir.file("run")));
  EXPECT_FALSE(fs::exists(io::checkpoint_folder(dir.file("run"), 6)));

  // With room again, the run continues from step 3 to the uninterrupted run's result.
  const auto resumed = train("run", 6);
  ASSERT_EQ(resumed.first, 0) << resumed.second;
  EXPECT_EQ(step_losses(dir.file("run")), step_losses(dir.file("full")));
}

/// Spoils five images of `samples` (every fourth from the second): truncated, not an image,
/// empty, missing, NaN pixels; returns their paths.
std::vector<std::string> spoil_images(const std::vector<data::Sample>& samples) {
  std::vector<std::string> bad;
  for (size_t i = 1; i < samples.size() && bad.size() < 5; i += 4) bad.push_back(samples[i].image);
  EXPECT_EQ(bad.size(), 5u);
  const std::string png = testing::read_text(bad[0]);
  testing::write_text(bad[0], png.substr(0, png.size() / 2));
  testing::write_text(bad[1], std::string(2048, '\x5a'));
  testing::write_text(bad[2], "");
  fs::remove(bad[3]);
  cv::Mat nan_image(64, 64, CV_32FC1, cv::Scalar(0.5));
  nan_image.at<float>(10, 10) = std::nanf("");
  EXPECT_TRUE(cv::imwrite(bad[4] + ".tiff", nan_image));
  fs::rename(bad[4] + ".tiff", bad[4]);  // a float TIFF under the .png name: decoding goes by content
  return bad;
}

TEST(Faults, BadImagesMidDatasetAreSkippedAndNamedWithinTheBudget) {
  testing::TempDir dir;
  auto cfg = fault_run(make_synth(dir.file("synth"), 24), 0, 0);
  const auto samples = data::read_dataset(cfg.data.sources[0]);
  cfg.loader.drop_last = false;
  cfg.train.max_steps = static_cast<int64_t>(samples.size() + 7) / 8;  // one epoch: every sample once
  const auto bad = spoil_images(samples);
  cfg.loader.max_bad_fraction = 0.05;  // 5 of the 100-sample floor
  const auto within =
      testing::run_msmedcap("train -c " + write_config(dir, "ok.json", cfg) + " --run-dir " + dir.file("ok"));
  ASSERT_EQ(within.exit_code, 0) << within.err;
  EXPECT_EQ(within.err.find("libpng"), std::string::npos) << within.err;  // named by msmedcap, not by the codec
  for (const auto& image : bad) EXPECT_NE(within.err.find("skipped: " + image + ": "), std::string::npos) << image;
  EXPECT_NE(within.err.find("truncated PNG"), std::string::npos) << within.err;
  EXPECT_NE(within.err.find("NaN"), std::string::npos) << within.err;
  const auto state = config::read_json_file(io::latest_checkpoint(dir.file("ok")) + "/state.json");
  EXPECT_EQ(state.at("loader").at("bad").get<int64_t>(), 5);
  for (const auto& [step, loss] : step_losses(dir.file("ok"))) EXPECT_TRUE(std::isfinite(loss)) << step;

  cfg.loader.max_bad_fraction = 0.0;
  const auto beyond = testing::run_msmedcap("--log-level error train -c " + write_config(dir, "strict.json", cfg) +
                                            " --run-dir " + dir.file("strict"));
  EXPECT_EQ(beyond.exit_code, 1);
  EXPECT_EQ(testing::count_lines(beyond.err), 1u) << beyond.err;
  EXPECT_NE(beyond.err.find("exceed loader.max_bad_fraction = 0"), std::string::npos) << beyond.err;
  EXPECT_NE(beyond.err.find("synth/images/"), std::string::npos) << beyond.err;
}

TEST(Faults, DamagedCheckpointsAreRefusedInOneLineNamingTheFile) {
  testing::TempDir dir;
  auto cfg = fault_run(make_synth(dir.file("synth"), 24), 2, 0);
  cfg.loader.workers = 0;
  const auto run =
      testing::run_msmedcap("train -c " + write_config(dir, "run.json", cfg) + " --run-dir " + dir.file("run"));
  ASSERT_EQ(run.exit_code, 0) << run.err;
  const std::string good = io::latest_checkpoint(dir.file("run"));

  struct Damage {
    std::string what, file, error;
    std::function<void(const std::string& ckpt)> apply;
  };
  const auto truncate_by = [](const std::string& file, size_t n) {
    const std::string bytes = testing::read_text(file);
    testing::write_text(file, bytes.substr(0, bytes.size() - n));
  };
  const std::vector<Damage> damages{
      {"model cut short", "model.safetensors", "reach beyond the data section",
       [&](const std::string& c) { truncate_by(c + "/model.safetensors", 100); }},
      {"optimizer header cut", "optimizer.safetensors", "optimizer.safetensors",
       [&](const std::string& c) {
         testing::write_text(c + "/optimizer.safetensors",
                             testing::read_text(c + "/optimizer.safetensors").substr(0, 20));
       }},
      {"state cut short", "state.json", "malformed JSON",
       [&](const std::string& c) { truncate_by(c + "/state.json", 10); }},
      {"model missing", "model.safetensors", "which lacks model.safetensors",
       [&](const std::string& c) { fs::remove(c + "/model.safetensors"); }},
  };
  for (const auto& d : damages) {
    SCOPED_TRACE(d.what);
    const std::string copy = dir.file("damaged");
    fs::remove_all(copy);
    fs::copy(dir.file("run"), copy, fs::copy_options::recursive);
    const std::string ckpt = copy + "/checkpoints/" + fs::path(good).filename().string();
    d.apply(ckpt);
    const auto resumed = testing::run_msmedcap("--log-level error train --run-dir " + copy + " --resume");
    EXPECT_EQ(resumed.exit_code, 1) << resumed.err;
    EXPECT_EQ(testing::count_lines(resumed.err), 1u) << resumed.err;
    EXPECT_NE(resumed.err.find(d.file), std::string::npos) << resumed.err;
    EXPECT_NE(resumed.err.find(d.error), std::string::npos) << resumed.err;
    // Nothing was written over: the damaged run's metrics and config are as they were.
    EXPECT_EQ(testing::read_text(copy + "/metrics.jsonl"), testing::read_text(dir.file("run/metrics.jsonl")));
  }
  // `latest` naming a folder that is gone.
  const std::string copy = dir.file("dangling");
  fs::copy(dir.file("run"), copy, fs::copy_options::recursive);
  fs::remove_all(copy + "/checkpoints/" + fs::path(good).filename().string());
  const auto dangling = testing::run_msmedcap("--log-level error train --run-dir " + copy + " --resume");
  EXPECT_EQ(dangling.exit_code, 1);
  EXPECT_NE(dangling.err.find("checkpoints/latest: names"), std::string::npos) << dangling.err;
}

TEST(Faults, NaNInCachedFeaturesSkipsTheSampleAndKeepsParametersFinite) {
  testing::TempDir dir;
  const std::string jsonl = make_synth(dir.file("synth"), 8);
  auto cfg = tiny_run(jsonl, "stage1_sam");
  cfg.train.max_steps = 2;
  cfg.loader.max_bad_fraction = 0.05;
  // A SAM feature cache of this model and preprocessing.
  torch::manual_seed(static_cast<uint64_t>(cfg.runtime.seed));
  auto model = models::build_model(cfg.model);
  const auto samples = data::read_dataset(cfg.data.sources[0]);
  ASSERT_EQ(samples.size(), 8u);
  {
    data::FeatureCacheWriter writer(dir.file("cache"),
                                    models::encoder_provenance(*model, config::Branch::kSam, cfg.data.transform));
    for (size_t i = 0; i < samples.size(); ++i) {
      writer.add(data::feature_key(config::Branch::kSam, samples[i]),
                 torch::randn({cfg.model.sam.output_channels, 8, 8}));
    }
    writer.finish();
  }
  // The writer refuses non-finite values, so the NaN is put into the shard afterwards, as a
  // damaged disk or a foreign writer would: float16 0x7E00 over one value of sample 5.
  const std::string key = data::feature_key(config::Branch::kSam, samples[5]);
  int patched = 0;
  for (const auto& e : fs::directory_iterator(dir.file("cache"))) {
    if (e.path().extension() != ".safetensors") continue;
    const io::SafetensorsFile shard(e.path().string());
    const io::TensorInfo* info = shard.find(key);
    if (info == nullptr) continue;
    const std::string bytes = testing::read_text(e.path().string());
    uint64_t header = 0;
    std::memcpy(&header, bytes.data(), 8);
    std::string spoiled = bytes;
    spoiled.replace(8 + header + info->begin + 2 * 100, 2, std::string("\x00\x7e", 2));
    testing::write_text(e.path().string(), spoiled);
    ++patched;
  }
  ASSERT_EQ(patched, 1);
  cfg.data.feature_cache = dir.file("cache");
  const auto result = run_train(cfg, dir.file("run"));
  EXPECT_EQ(result.steps, 2);
  EXPECT_EQ(result.skipped_steps, 0);  // the sample was dropped before it reached a loss
  const auto state = config::read_json_file(io::latest_checkpoint(dir.file("run")) + "/state.json");
  EXPECT_EQ(state.at("loader").at("bad").get<int64_t>(), 2);  // once per epoch
  for (const auto& [step, loss] : step_losses(dir.file("run"))) EXPECT_TRUE(std::isfinite(loss)) << step;
  for (const auto& [name, t] : checkpoint_model(dir.file("run")))
    EXPECT_TRUE(torch::isfinite(t).all().item<bool>()) << name;
}

}  // namespace
}  // namespace msmedcap
