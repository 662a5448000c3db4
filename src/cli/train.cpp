// msmedcap train -c RUN.json [--set k=v]... --run-dir DIR [--resume | --auto-resume]: train the
// stage the config names (train.stage.name), on one process or, under torchrun / Slurm /
// scripts/launch.sh, on several. SIGINT/SIGTERM save a checkpoint and exit 130/143.
#include <atomic>
#include <csignal>
#include <filesystem>
#include <iostream>

#include <torch/utils.h>

#include "caption_setup.h"
#include "commands.h"
#include "msmedcap/core/check.h"
#include "msmedcap/core/device.h"
#include "msmedcap/core/logging.h"
#include "msmedcap/inference/batch_caption.h"
#include "msmedcap/io/checkpoint.h"
#include "msmedcap/metrics/evaluate.h"
#include "msmedcap/models/pretrained.h"
#include "msmedcap/training/communicator.h"
#include "msmedcap/training/distributed.h"
#include "msmedcap/training/trainer.h"

namespace msmedcap::cli {
namespace {

std::atomic<int> g_stop_signal{0};

extern "C" void on_stop_signal(int sig) {
  g_stop_signal.store(sig);
  // A second signal ends the process at once.
  std::signal(sig, SIG_DFL);
}

/// train.val_caption_images: at each validation, captions the first images of val_data greedily
/// and scores them (no METEOR: it is slow and needs WordNet). Rank 0 only.
class CaptionMetricsValidator final : public training::Validator {
 public:
  CaptionMetricsValidator(const config::RunConfig& run, models::MsMedCapModel model)
      : model_(std::move(model)), setup_(run_captioning(run)) {
    const int64_t n = run.train.val_caption_images;
    MSMEDCAP_CHECK(!run.val_data.sources.empty(), "train.val_caption_images: needs val_data");
    MSMEDCAP_CHECK(run.data.feature_cache.empty(), "train.val_caption_images: captions are made from pixels; ",
                   "turn it off with data.feature_cache");
    samples_ = read_config_dataset(run, "val_data");
    if (n > 0 && static_cast<int64_t>(samples_.size()) > n) samples_.resize(static_cast<size_t>(n));
    for (const auto& s : samples_) references_[s.id] = s.captions;
  }

  config::Json validate(int64_t) override {
    inference::Captioner captioner(model_, setup_.tokenizer, setup_.options);
    std::map<std::string, std::string> predictions;
    inference::caption_samples(captioner, samples_, setup_.batch, [&](const inference::CaptionRecord& r) {
      MSMEDCAP_CHECK(r.error.empty(), "train.val_caption_images: ", r.image, ": ", r.error);
      predictions[r.id] = r.caption;
    });
    const auto ev = metrics::evaluate(predictions, references_);
    config::Json out;
    for (const auto& [name, value] : ev.corpus) out[name] = value;
    return out;
  }

 private:
  models::MsMedCapModel model_;
  RunCaptioning setup_;
  std::vector<data::Sample> samples_;
  std::map<std::string, std::vector<std::string>> references_;
};

}  // namespace

void register_train(CLI::App& app, const GlobalOptions& globals) {
  struct Options {
    ConfigOptions config;
    std::string run_dir;
    bool resume = false;
    bool auto_resume = false;
  };
  auto o = std::make_shared<Options>();
  auto* cmd = app.add_subcommand("train", "train a stage (train.stage.name) and write checkpoints to a run folder");
  add_config_options(cmd, o->config);
  add_model_option(cmd, o->config);
  cmd->add_option("--run-dir", o->run_dir, "run folder: config.json, metrics.jsonl, checkpoints/")->required();
  auto* resume = cmd->add_flag("--resume", o->resume,
                               "continue the run in --run-dir from its latest checkpoint (its config.json first)");
  cmd->add_flag("--auto-resume", o->auto_resume,
                "--resume when --run-dir has a checkpoint, else start the run (for jobs that are requeued or restarted)")
      ->excludes(resume);
  cmd->callback([o, &globals] {
    ConfigOptions sources = o->config;
    if (o->auto_resume) {
      o->resume = !io::latest_checkpoint(o->run_dir).empty();
      core::log_info("train", "--auto-resume: {}", o->resume ? "continuing the run in " + o->run_dir : "starting a new run");
    }
    if (o->resume) {
      const std::string saved = o->run_dir + "/config.json";
      MSMEDCAP_CHECK(std::filesystem::exists(saved), o->run_dir, ": --resume needs the run's config.json");
      sources.files.insert(sources.files.begin(), saved);
    }
    config::RunConfig run;
    const config::Json resolved = resolve_run_config(run, sources, globals);
    if (o->config.dump_config) {
      std::cout << resolved.dump(2) << "\n";
      return;
    }
    const auto env = training::DistEnv::from_environment();
    c10::Device device = core::parse_device(run.runtime.device);
    if (device.is_cuda() && !device.has_index() && env.world_size > 1) {
      device = core::parse_device("cuda:" + std::to_string(env.local_rank));
    }
    // Parameters without weights start from the seed, the same on every rank.
    torch::manual_seed(static_cast<uint64_t>(run.runtime.seed));
    if (run.weights.empty()) {
      core::log_warn("train", "no weights in the config: every part of the model starts from random values");
    }
    auto model = models::load_model(run.model, run.weights, run.load);
    std::unique_ptr<training::Distributed> dist;
    std::unique_ptr<training::Communicator> comm;
    if (env.world_size > 1) {
      dist = std::make_unique<training::Distributed>(env, device);
      comm = training::group_communicator(*dist);
    }

    training::TrainerOptions options;
    options.run_dir = o->run_dir;
    options.resume = o->resume;
    options.device = device;
    options.comm = comm.get();
    options.stop_signal = &g_stop_signal;
    if (run.train.val_caption_images != 0 && env.rank == 0)
      options.validators.push_back(std::make_shared<CaptionMetricsValidator>(run, model));
    std::signal(SIGINT, on_stop_signal);
    std::signal(SIGTERM, on_stop_signal);
    const auto result = training::train(*model, run, resolved, options);
    std::signal(SIGINT, SIG_DFL);
    std::signal(SIGTERM, SIG_DFL);
    if (env.rank == 0) {
      core::log_info("train", "done: {} steps ({} skipped), last loss {:.4f}, checkpoint {}", result.steps,
                     result.skipped_steps, result.last.total, result.checkpoint);
    }
    if (result.stopped_by_signal != 0) throw CLI::RuntimeError(128 + result.stopped_by_signal);
  });
}

}  // namespace msmedcap::cli
