// msmedcap train -c RUN.json [--set k=v]... --run-dir DIR [--resume | --auto-resume]: train the
// stage the config names (train.stage.name), on one process or, under torchrun / Slurm /
// scripts/launch.sh, on several. SIGINT/SIGTERM save a checkpoint and exit 130/143.
#include <atomic>
#include <csignal>
#include <iostream>

#include "commands.h"
#include "msmedcap/core/device.h"
#include "msmedcap/core/logging.h"
#include "msmedcap/io/run_folder.h"
#include "msmedcap/models/pretrained.h"
#include "msmedcap/training/communicator.h"
#include "msmedcap/training/distributed.h"
#include "msmedcap/training/trainer.h"
#include "msmedcap/training/validators.h"

namespace msmedcap::cli {
namespace {

std::atomic<int> g_stop_signal{0};

extern "C" void on_stop_signal(int sig) {
  g_stop_signal.store(sig);
  // A second signal ends the process at once.
  std::signal(sig, SIG_DFL);
}

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
  cmd->add_flag(
         "--auto-resume", o->auto_resume,
         "--resume when --run-dir has a checkpoint, else start the run (for jobs that are requeued or restarted)")
      ->excludes(resume);
  cmd->callback([o, &globals] {
    ConfigOptions sources = o->config;
    const io::RunFolder folder(o->run_dir);
    if (o->auto_resume) {
      o->resume = folder.has_checkpoint();
      core::log_info("train", "--auto-resume: {}",
                     o->resume ? "continuing the run in " + o->run_dir : "starting a new run");
    }
    if (o->resume) folder.layer_saved_config(sources.files, "--resume");
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
    auto model = models::load_model(run);  // float32 on the CPU; the trainer moves it
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
      options.validators.push_back(std::make_shared<training::CaptionMetricsValidator>(run, model));
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
