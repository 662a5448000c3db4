// Schedules, stages (what trains, what is frozen) and the optimiser's state round trip.
#include <gtest/gtest.h>

#include <cmath>

#include <torch/torch.h>

#include "msmedcap/config/config_io.h"
#include "msmedcap/config/run_config.h"
#include "msmedcap/core/check.h"
#include "msmedcap/models/pretrained.h"
#include "msmedcap/training/distributed.h"
#include "msmedcap/training/optimizer.h"
#include "msmedcap/training/schedule.h"
#include "msmedcap/training/stages.h"
#include "tiny_models.h"

namespace msmedcap {
namespace {

TEST(Schedule, LavisWarmupThenCosinePerEpoch) {
  config::OptimizerConfig c;
  c.lr = 1e-4;
  c.min_lr = 1e-5;
  c.warmup_lr = 1e-6;
  c.warmup_steps = 100;
  EXPECT_DOUBLE_EQ(training::learning_rate(c, 0, 0, 4, 1000), 1e-6);
  EXPECT_DOUBLE_EQ(training::learning_rate(c, 50, 0, 4, 1000), 1e-6 + (1e-4 - 1e-6) * 0.5);
  EXPECT_DOUBLE_EQ(training::learning_rate(c, 100, 0, 4, 1000), 1e-4);  // cos(0)
  EXPECT_DOUBLE_EQ(training::learning_rate(c, 30, 1, 4, 1000),
                   1e-5 + 9e-5 * 0.5 * (1 + std::cos(M_PI / 4)));  // epoch 1: no warm-up
  EXPECT_NEAR(training::learning_rate(c, 999, 2, 4, 1000), 1e-5 + 9e-5 * 0.5, 1e-18);
  c.schedule = "cosine";
  EXPECT_DOUBLE_EQ(training::learning_rate(c, 100, 0, 1, 1100), 1e-4);
  EXPECT_NEAR(training::learning_rate(c, 600, 0, 1, 1100), 1e-5 + 9e-5 * 0.5, 1e-18);
  EXPECT_NEAR(training::learning_rate(c, 1100, 0, 1, 1100), 1e-5, 1e-18);
  c.schedule = "linear";
  EXPECT_THROW(c.validate("train.optimizer"), Error);
}

models::MsMedCapModel tiny_model() { return models::build_model(testing::tiny_stage1_config().model); }

TEST(Stages, EachStageTrainsItsPartsAndFreezesTheRest) {
  auto model = tiny_model();
  config::StageConfig s;
  s.name = "stage1_sam";
  const auto trainable = training::apply_stage(*model, training::StagePlan(s, model->config()));
  bool temp = false;
  for (const auto& [name, p] : trainable) {
    EXPECT_EQ(name.rfind("sam_", 0), 0u) << name;
    EXPECT_EQ(name.rfind("sam_model.", 0), std::string::npos) << name;
    temp |= name == "sam_temp";
  }
  EXPECT_TRUE(temp);
  for (const auto& p : model->vision_model->parameters()) EXPECT_FALSE(p.requires_grad());
  for (const auto& p : model->sam_model->parameters()) EXPECT_FALSE(p.requires_grad());
  EXPECT_FALSE(model->sam_model->is_training());
  EXPECT_TRUE(model->sam_qformer->is_training());
  EXPECT_FALSE(model->qformer->is_training());

  s.name = "stage2";
  const auto stage2 = training::apply_stage(*model, training::StagePlan(s, model->config()));
  std::set<std::string> roots;
  for (const auto& [name, p] : stage2) roots.insert(name.substr(0, name.find('.')));
  EXPECT_EQ(roots, (std::set<std::string>{"qformer", "query_tokens", "language_projection", "sam_qformer",
                                          "sam_query_tokens", "sam_language_projection"}));
  for (const auto& p : model->language_model->parameters()) EXPECT_FALSE(p.requires_grad());

  s.name = "caption";
  s.train_vision = true;
  bool vision = false;
  for (const auto& [name, p] : training::apply_stage(*model, training::StagePlan(s, model->config())))
    vision |= name.rfind("vision_model.", 0) == 0;
  EXPECT_TRUE(vision);
  EXPECT_TRUE(model->vision_model->is_training());
  s.name = "stage2";
  EXPECT_THROW(training::apply_stage(*model, training::StagePlan(s, model->config())),
               Error);  // train_vision outside the caption stage
  s.name = "stage3";
  s.train_vision = false;
  EXPECT_THROW(training::apply_stage(*model, training::StagePlan(s, model->config())), Error);

  // The decoder alone, or the caption stage with the decoder too.
  s.name = "decoder_lm";
  for (const auto& [name, p] : training::apply_stage(*model, training::StagePlan(s, model->config())))
    EXPECT_EQ(name.rfind("language_model.", 0), 0u) << name;
  EXPECT_TRUE(model->language_model->is_training());
  EXPECT_FALSE(model->qformer->is_training());
  for (const auto& p : model->qformer->parameters()) EXPECT_FALSE(p.requires_grad());
  s.name = "caption";
  s.train_llm = true;
  std::set<std::string> caption_roots;
  for (const auto& [name, p] : training::apply_stage(*model, training::StagePlan(s, model->config())))
    caption_roots.insert(name.substr(0, name.find('.')));
  EXPECT_TRUE(caption_roots.count("language_model"));
  EXPECT_TRUE(caption_roots.count("qformer"));
  s.name = "stage2";
  EXPECT_THROW(training::apply_stage(*model, training::StagePlan(s, model->config())),
               Error);  // train_llm outside the caption stage
}

TEST(Optimizer, GroupsAndStateRoundTripBitExactly) {
  torch::manual_seed(5);
  auto make = [] {
    torch::manual_seed(6);
    return std::vector<std::pair<std::string, torch::Tensor>>{
        {"layer.weight", torch::randn({4, 3}).set_requires_grad(true)},
        {"layer.bias", torch::randn({4}).set_requires_grad(true)},
        {"norm.weight", torch::randn({3}).set_requires_grad(true)}};
  };
  config::OptimizerConfig cfg;
  cfg.lr = 0.01;
  auto a = make();
  training::Optimizer opt_a(a, cfg);
  EXPECT_EQ(opt_a.decayed(), (std::vector<std::string>{"layer.weight"}));
  EXPECT_EQ(opt_a.undecayed(), (std::vector<std::string>{"layer.bias", "norm.weight"}));
  auto loss_of = [](const std::vector<std::pair<std::string, torch::Tensor>>& p, int k) {
    const auto x = torch::arange(3, torch::kFloat32) * (k + 1);
    return (torch::matmul(p[0].second, x * p[2].second) + p[1].second).pow(2).sum();
  };
  for (int k = 0; k < 3; ++k) {
    opt_a.zero_grad();
    loss_of(a, k).backward();
    opt_a.step();
  }
  const io::StateDict saved = opt_a.state();
  EXPECT_EQ(saved.size(), 9u);
  EXPECT_EQ(saved.at("step.layer.bias").item<int64_t>(), 3);
  // A fresh optimiser over copies of the parameters, given the saved state, continues identically.
  auto b = make();
  for (size_t i = 0; i < b.size(); ++i) {
    torch::NoGradGuard no_grad;
    b[i].second.copy_(a[i].second);
  }
  training::Optimizer opt_b(b, cfg);
  opt_b.load_state(io::StateDictSource(saved, "saved"));
  for (auto* o : {&opt_a, &opt_b}) {
    auto& p = o == &opt_a ? a : b;
    o->zero_grad();
    loss_of(p, 3).backward();
    o->step();
  }
  for (size_t i = 0; i < a.size(); ++i) EXPECT_TRUE(torch::equal(a[i].second, b[i].second)) << a[i].first;
  io::StateDict wrong = saved;
  wrong["exp_avg.layer.weight"] = torch::zeros({2, 2});
  EXPECT_THROW(opt_b.load_state(io::StateDictSource(wrong, "wrong")), Error);
}

TEST(Distributed, EnvironmentFromTorchrunSlurmOrNone) {
  const auto single = training::DistEnv::from_environment({{"HOME", "/root"}});
  EXPECT_EQ(single.world_size, 1);
  EXPECT_EQ(single.source, "single");
  const auto tr = training::DistEnv::from_environment(
      {{"RANK", "3"}, {"WORLD_SIZE", "4"}, {"LOCAL_RANK", "1"}, {"MASTER_ADDR", "node7"}, {"MASTER_PORT", "29999"}});
  EXPECT_EQ(tr.source, "torchrun");
  EXPECT_EQ(tr.rank, 3);
  EXPECT_EQ(tr.world_size, 4);
  EXPECT_EQ(tr.local_rank, 1);
  EXPECT_EQ(tr.master_addr, "node7");
  EXPECT_EQ(tr.master_port, 29999);
  const auto sl = training::DistEnv::from_environment({{"SLURM_PROCID", "5"},
                                                       {"SLURM_NTASKS", "8"},
                                                       {"SLURM_LOCALID", "1"},
                                                       {"SLURM_JOB_NODELIST", "gpu[03-05,9],cpu1"}});
  EXPECT_EQ(sl.source, "slurm");
  EXPECT_EQ(sl.rank, 5);
  EXPECT_EQ(sl.master_addr, "gpu03");
  EXPECT_EQ(sl.master_port, 29500);
  EXPECT_EQ(training::first_slurm_host("a1,a2"), "a1");
  EXPECT_EQ(training::first_slurm_host("solo"), "solo");
  EXPECT_THROW(training::DistEnv::from_environment({{"RANK", "x"}, {"WORLD_SIZE", "2"}}), Error);
  EXPECT_THROW(training::DistEnv::from_environment({{"RANK", "2"}, {"WORLD_SIZE", "2"}}), Error);
  EXPECT_THROW(training::DistEnv::from_environment({{"RANK", "0"}, {"WORLD_SIZE", "2"}, {"MASTER_PORT", "70000"}}),
               Error);
}

}  // namespace
}  // namespace msmedcap
