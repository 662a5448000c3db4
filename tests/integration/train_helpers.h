#pragma once
// Helpers of the training integration suites (train_test.cpp, fault_test.cpp): the tiny model on
// a synthetic dataset, an in-process run, and what a run folder holds.
#include <atomic>
#include <filesystem>
#include <functional>
#include <map>
#include <sstream>
#include <string>

#include <torch/torch.h>

#include "msmedcap/config/config_io.h"
#include "msmedcap/data/synthetic.h"
#include "msmedcap/io/checkpoint.h"
#include "msmedcap/io/tensor_store.h"
#include "msmedcap/models/pretrained.h"
#include "msmedcap/training/trainer.h"
#include "test_utils.h"
#include "tiny_models.h"

namespace msmedcap {

/// A synthetic dataset of `n` studies (64 px) in `dir`; returns the train split's path.
inline std::string make_synth(const std::string& dir, int64_t n) {
  data::SynthOptions o;
  o.n = n;
  o.image_size = 64;
  o.val_fraction = 0.0;
  o.seen_test_fraction = 0.0;  // every study of a seen combination trains
  data::write_synthetic_dataset(dir, o);
  return dir + "/train.jsonl";
}

/// The tiny model with both stage-1 text paths, the test tokenizers and `train_jsonl` as data:
/// one batch of 8 (the same images every step, no augmentation) so every loss must fall.
inline config::RunConfig tiny_run(const std::string& train_jsonl, const std::string& stage) {
  config::RunConfig cfg = testing::tiny_stage1_config();
  config::DatasetSourceConfig src;
  src.format = "jsonl";
  src.root = std::filesystem::path(train_jsonl).parent_path().string();
  src.annotations = "train.jsonl";
  cfg.data.sources = {src};
  cfg.data.samples_per_epoch = 8;
  cfg.data.transform.clip_size = 32;
  cfg.data.transform.sam_size = 64;
  cfg.loader.batch_size = 8;
  cfg.loader.workers = 0;
  cfg.tokenizers.qformer = testing::data_path("tokenizers/bert");
  cfg.tokenizers.decoder = testing::data_path("tokenizers/opt");
  cfg.train.stage.name = stage;
  cfg.train.stage.train_vision = stage == "caption";
  cfg.train.grad_checkpointing = stage == "caption";
  cfg.train.max_steps = 10;
  cfg.train.log_every = 1;
  cfg.train.optimizer.lr = 1e-3;
  cfg.train.optimizer.warmup_steps = 0;
  cfg.train.optimizer.schedule = "cosine";
  return cfg;
}

inline config::Json resolved_of(const config::RunConfig& cfg) { return config::to_json(cfg); }

inline training::TrainResult run_train(config::RunConfig cfg, const std::string& run_dir, bool resume = false,
                                       const std::function<void(int64_t, at::Tensor&)>& on_loss = {},
                                       const std::atomic<int>* stop = nullptr) {
  torch::manual_seed(static_cast<uint64_t>(cfg.runtime.seed));
  auto model = models::build_model(cfg.model);
  training::TrainerOptions o;
  o.run_dir = run_dir;
  o.resume = resume;
  o.on_loss = on_loss;
  o.stop_signal = stop;
  return training::train(*model, cfg, resolved_of(cfg), o);
}

/// metrics.jsonl lines of training steps: step -> loss (a line cut short by a kill is skipped).
inline std::map<int64_t, double> step_losses(const std::string& run_dir) {
  std::map<int64_t, double> out;
  std::istringstream in(testing::read_text(run_dir + "/metrics.jsonl"));
  std::string line;
  while (std::getline(in, line)) {
    const auto j = config::Json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (!j.is_discarded() && j.contains("loss")) out[j.at("step").get<int64_t>()] = j.at("loss").get<double>();
  }
  return out;
}

inline io::StateDict checkpoint_model(const std::string& run_dir) {
  return io::TensorStore::open(io::latest_checkpoint(run_dir) + "/model.safetensors").load_all();
}

inline std::string write_config(const testing::TempDir& dir, const std::string& name, config::RunConfig cfg) {
  const std::string path = dir.file(name);
  testing::write_text(path, resolved_of(cfg).dump(2));
  return path;
}

}  // namespace msmedcap
