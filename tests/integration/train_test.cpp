// The trainer end to end on the synthetic data with the tiny model: each stage's loss falls,
// a resumed run equals an uninterrupted one, non-finite losses or gradients are skipped or stop
// the run without saving a diverged state (and caption refuses one), Q-Former dropout is on in
// training only, two stage-1 results merge, two Gloo processes equal one, and SIGTERM saves and
// exits 143.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <limits>
#include <map>
#include <sstream>
#include <thread>

#include <unistd.h>

#include <torch/torch.h>

#include "msmedcap/config/config_io.h"
#include "msmedcap/core/check.h"
#include "msmedcap/data/synthetic.h"
#include "msmedcap/io/checkpoint.h"
#include "msmedcap/io/tensor_store.h"
#include "msmedcap/models/pretrained.h"
#include "msmedcap/training/trainer.h"
#include "test_utils.h"
#include "tiny_models.h"
#include "train_helpers.h"

namespace msmedcap {
namespace {

namespace fs = std::filesystem;

class StageLoss : public ::testing::TestWithParam<std::string> {};

TEST_P(StageLoss, FallsOnARepeatedBatch) {
  testing::TempDir dir;
  auto cfg = tiny_run(make_synth(dir.file("synth"), 12), GetParam());
  // The encoder-pretraining stages start every part from random values: a larger step.
  if (GetParam().find("_pretrain") != std::string::npos) cfg.train.optimizer.lr = 5e-3;
  const auto result = run_train(cfg, dir.file("run"));
  EXPECT_EQ(result.steps, 10);
  const auto losses = step_losses(dir.file("run"));
  ASSERT_EQ(losses.size(), 10u);
  for (const auto& [step, loss] : losses) EXPECT_TRUE(std::isfinite(loss)) << step;
  EXPECT_LT(losses.at(10), losses.at(1) - 0.05) << GetParam() << ": " << losses.at(1) << " -> " << losses.at(10);
  // The checkpoint holds exactly the stage's trainable parameters.
  const auto saved = checkpoint_model(dir.file("run"));
  EXPECT_FALSE(saved.empty());
  for (const auto& [name, t] : saved) {
    EXPECT_EQ(name.rfind("language_model.", 0), std::string::npos) << name;
    if (GetParam() != "sam_pretrain") EXPECT_EQ(name.rfind("sam_model.", 0), std::string::npos) << name;
  }
  // The encoder-pretraining stages train their encoder and save their head with it.
  if (GetParam() == "clip_pretrain") {
    EXPECT_TRUE(saved.count("vision_model.embeddings.patch_embedding.weight"));
    EXPECT_TRUE(saved.count("clip_pretrain_projection.weight"));
  }
  if (GetParam() == "sam_pretrain") {
    EXPECT_TRUE(saved.count("sam_model.vision_encoder.patch_embed.projection.weight"));
    EXPECT_TRUE(saved.count("sam_pretrain_decoder.pixel_projection.weight"));
  }
}

INSTANTIATE_TEST_SUITE_P(Train, StageLoss,
                         ::testing::Values("stage1_clip", "stage1_sam", "stage2", "caption", "clip_pretrain",
                                           "sam_pretrain"));

TEST(Train, SamPretrainWithMaskClassesTrainsAClassHeadFromTheCaptions) {
  // The finding type read from each caption classes the lesion pixels (mask ids from 10); the
  // class loss falls on a repeated batch, and the head is saved beside the mask decoder, as is
  // the place head (mask_classes.places), whose loss the total adds.
  testing::TempDir dir;
  auto cfg = tiny_run(make_synth(dir.file("synth"), 12), "sam_pretrain");
  cfg.train.optimizer.lr = 5e-3;
  cfg.train.stage.mask_classes.rules = std::string(MSMEDCAP_SOURCE_DIR) + "/configs/attributes/synthetic.json";
  cfg.train.stage.mask_classes.first_id = 10;
  cfg.train.stage.mask_classes.places = {2, 3};  // and where: the side, and a third from the top
  cfg.train.stage.mask_classes.place_weight = 3;
  run_train(cfg, dir.file("run"));
  std::map<int64_t, double> class_loss;
  std::istringstream in(testing::read_text(dir.file("run") + "/metrics.jsonl"));
  for (std::string line; std::getline(in, line);) {
    const auto j = config::Json::parse(line);
    if (!j.contains("mask_class")) continue;
    class_loss[j.at("step").get<int64_t>()] = j.at("mask_class").get<double>();
    const double acc = j.at("mask_class_acc").get<double>();
    EXPECT_TRUE(acc >= 0 && acc <= 1) << line;
    EXPECT_NEAR(j.at("loss").get<double>(),
                j.at("mask").get<double>() + j.at("mask_class").get<double>() + 3 * j.at("mask_place").get<double>(),
                1e-4);
  }
  ASSERT_EQ(class_loss.size(), 10u);
  EXPECT_LT(class_loss.at(10), class_loss.at(1) - 0.05) << class_loss.at(1) << " -> " << class_loss.at(10);
  const auto saved = checkpoint_model(dir.file("run"));
  ASSERT_TRUE(saved.count("sam_pretrain_classes.weight"));
  EXPECT_EQ(saved.at("sam_pretrain_classes.weight").size(0), 6);  // background + five finding types
  EXPECT_TRUE(saved.count("sam_pretrain_decoder.pixel_projection.weight"));
  ASSERT_TRUE(saved.count("sam_pretrain_places.weight"));
  EXPECT_EQ(saved.at("sam_pretrain_places.weight").size(0), 6);  // 2 columns x 3 rows
}

TEST(Train, FrozenPartsInBf16TrainTheFloat32Ones) {
  // train.frozen_dtype bf16: the encoders and the LLM are stored in bf16, the Q-Formers and
  // projections keep float32 master weights, and the loss still falls and stays finite.
  testing::TempDir dir;
  auto cfg = tiny_run(make_synth(dir.file("synth"), 12), "stage2");
  cfg.train.frozen_dtype = "bf16";
  const auto result = run_train(cfg, dir.file("run"));
  EXPECT_EQ(result.steps, 10);
  const auto losses = step_losses(dir.file("run"));
  for (const auto& [step, loss] : losses) EXPECT_TRUE(std::isfinite(loss)) << step;
  EXPECT_LT(losses.at(10), losses.at(1) - 0.05) << losses.at(1) << " -> " << losses.at(10);
  for (const auto& [name, t] : checkpoint_model(dir.file("run"))) EXPECT_EQ(t.scalar_type(), at::kFloat) << name;
  // fp16 has no CPU kernels for several operations: refused by name, as is runtime.dtype.
  cfg.train.frozen_dtype = "fp16";
  EXPECT_THROW(run_train(cfg, dir.file("run16")), Error);
  cfg.train.frozen_dtype = "fp32";
  cfg.runtime.dtype = "bf16";
  try {
    run_train(cfg, dir.file("run-rt"));
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("train.frozen_dtype"), std::string::npos) << e.what();
  }
}

TEST(Train, QFormerDropoutIsOnInTrainingAndOffInValidation) {
  // The first step's loss is computed before any update: with dropout it differs from the same
  // run without, in both stages and in both Q-Formers. With lr 1e-30 (0 is refused) the step
  // changes no weight that matters, so the validation after it (eval mode) gives the same loss.
  for (const std::string stage : {"stage1_clip", "stage1_sam", "stage2"}) {
    testing::TempDir dir;
    auto cfg = tiny_run(make_synth(dir.file("synth"), 12), stage);
    cfg.train.max_steps = 1;
    cfg.train.val_every = 1;
    cfg.train.optimizer.lr = cfg.train.optimizer.min_lr = cfg.train.optimizer.warmup_lr = 1e-30;
    cfg.val_data.sources = cfg.data.sources;
    run_train(cfg, dir.file("with"));
    for (auto* q : {&cfg.model.qformer, &cfg.model.sam_qformer})
      q->hidden_dropout_prob = q->attention_probs_dropout_prob = 0;
    run_train(cfg, dir.file("without"));
    // metrics.jsonl: the step's line has "loss", the validation's has "val": {"loss": ...}.
    const auto losses = [&](const std::string& run) {
      std::pair<double, double> train_val{NAN, NAN};
      for (const auto& j : testing::read_jsonl(dir.file(run) + "/metrics.jsonl")) {
        if (j.contains("val"))
          train_val.second = j["val"]["loss"].get<double>();
        else if (j.contains("loss"))
          train_val.first = j["loss"].get<double>();
      }
      return train_val;
    };
    const auto [train_a, val_a] = losses("with");
    const auto [train_b, val_b] = losses("without");
    EXPECT_GT(std::abs(train_a - train_b), 1e-4) << stage << ": " << train_a << " vs " << train_b;
    EXPECT_DOUBLE_EQ(val_a, val_b) << stage;
  }
}

TEST(Train, APromptThatFillsTheTextBudgetIsRefusedAtStart) {
  testing::TempDir dir;
  auto cfg = tiny_run(make_synth(dir.file("synth"), 12), "stage2");
  cfg.train.prompt = "a radiograph of the chest showing ";
  cfg.train.decoder_max_len = 4;
  try {
    run_train(cfg, dir.file("run"));
    FAIL() << "the prompt leaves no caption token";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("train.prompt: "), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("train.decoder_max_len (4)"), std::string::npos) << e.what();
  }
}

TEST(Train, ResumeEqualsAnUninterruptedRun) {
  testing::TempDir dir;
  auto cfg = tiny_run(make_synth(dir.file("synth"), 24), "stage1_clip");
  cfg.data.samples_per_epoch = 0;  // 24 samples, 3 batches an epoch: the order changes per epoch
  cfg.data.transform.augment = true;
  cfg.loader.workers = 2;
  cfg.train.max_steps = 8;
  cfg.train.save_every = 3;
  cfg.train.keep = 1;
  run_train(cfg, dir.file("full"));

  // Interrupted: a stop request during step 5 (index 4) saves after it and returns.
  std::atomic<int> stop{0};
  const auto first = run_train(
      cfg, dir.file("split"), false,
      [&](int64_t step, at::Tensor&) {
        if (step == 4) stop = 15;
      },
      &stop);
  EXPECT_EQ(first.stopped_by_signal, 15);
  EXPECT_EQ(first.steps, 5);
  const auto second = run_train(cfg, dir.file("split"), true);
  EXPECT_EQ(second.steps, 8);

  const auto a = step_losses(dir.file("full")), b = step_losses(dir.file("split"));
  ASSERT_EQ(a.size(), 8u);
  EXPECT_EQ(a, b);  // bit-exact, every step
  const auto pa = checkpoint_model(dir.file("full")), pb = checkpoint_model(dir.file("split"));
  ASSERT_EQ(pa.size(), pb.size());
  for (const auto& [name, t] : pa) EXPECT_TRUE(torch::equal(t, pb.at(name))) << name;
  // keep = 1: the latest step folder only (no best without validation).
  int folders = 0;
  for (const auto& e : fs::directory_iterator(dir.file("full") + "/checkpoints")) folders += e.is_directory();
  EXPECT_EQ(folders, 1);
  // A fresh run into a folder with checkpoints is refused.
  EXPECT_THROW(run_train(cfg, dir.file("full")), Error);
}

TEST(Train, NonFiniteStepsNeverSaveADivergedState) {
  testing::TempDir dir;
  auto cfg = tiny_run(make_synth(dir.file("synth"), 12), "stage2");
  cfg.train.max_steps = 4;
  const auto inject = [](int64_t step, at::Tensor& loss) {
    if (step == 1) loss = loss * std::numeric_limits<double>::quiet_NaN();
  };
  cfg.train.nan_action = "skip";
  const auto skipped = run_train(cfg, dir.file("skip"), false, inject);
  EXPECT_EQ(skipped.steps, 4);
  EXPECT_EQ(skipped.skipped_steps, 1);
  for (const auto& [name, t] : checkpoint_model(dir.file("skip")))
    EXPECT_TRUE(torch::isfinite(t).all().item<bool>()) << name;
  EXPECT_NE(testing::read_text(dir.file("skip") + "/metrics.jsonl").find("\"skipped\":true"), std::string::npos);

  cfg.train.nan_action = "stop";
  try {
    run_train(cfg, dir.file("stop"), false, inject);
    FAIL() << "a NaN loss with nan_action stop must throw";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("non-finite loss at step 1"), std::string::npos) << e.what();
  }
  // The checkpoint saved on the way out holds the parameters after step 1 (one good update).
  const auto dir_saved = io::latest_checkpoint(dir.file("stop"));
  EXPECT_NE(dir_saved.find("step-000000001"), std::string::npos) << dir_saved;
  for (const auto& [name, t] : checkpoint_model(dir.file("stop")))
    EXPECT_TRUE(torch::isfinite(t).all().item<bool>()) << name;

  // A finite loss with NaN gradients (sqrt's derivative at 0 times 0): the update would write
  // NaN into every trained weight, and the stop would then save them as latest. The gradient
  // norm is checked first: the step is treated as non-finite and the weights stay good.
  const auto nan_gradients = [](int64_t step, at::Tensor& loss) {
    if (step == 2) loss = loss + (loss * 0.0).sqrt();
  };
  try {
    run_train(cfg, dir.file("grad"), false, nan_gradients);
    FAIL() << "NaN gradients with nan_action stop must throw";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("non-finite gradient norm at step 2"), std::string::npos) << e.what();
  }
  EXPECT_NE(io::latest_checkpoint(dir.file("grad")).find("step-000000002"), std::string::npos);
  auto saved = checkpoint_model(dir.file("grad"));
  for (const auto& [name, t] : saved) EXPECT_TRUE(torch::isfinite(t).all().item<bool>()) << name;
  cfg.train.nan_action = "skip";
  const auto skipped_grad = run_train(cfg, dir.file("grad-skip"), false, nan_gradients);
  EXPECT_EQ(skipped_grad.steps, 4);
  EXPECT_EQ(skipped_grad.skipped_steps, 1);
  for (const auto& [name, t] : checkpoint_model(dir.file("grad-skip")))
    EXPECT_TRUE(torch::isfinite(t).all().item<bool>()) << name;

  // Weights with a NaN (a checkpoint diverged elsewhere): caption refuses them by name instead
  // of writing empty captions with exit 0.
  const std::string ckpt = io::latest_checkpoint(dir.file("grad")) + "/model.safetensors";
  const std::string victim = saved.begin()->first;
  saved.begin()->second.view(-1)[0] = std::numeric_limits<float>::quiet_NaN();
  io::save_safetensors(ckpt, saved);
  const auto r = testing::run_msmedcap("caption --run " + dir.file("grad") + " --images " + dir.file("synth/images") +
                                       " --out " + dir.file("pred.jsonl"));
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_NE(r.err.find("parameter '" + victim + "' has non-finite values (1 NaN"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(dir.file("pred.jsonl")));
}

TEST(TrainCli, MergedStage1HoldsBothQFormersAndFeedsStage2) {
  testing::TempDir dir;
  const auto jsonl = make_synth(dir.file("synth"), 12);
  for (const char* stage : {"stage1_clip", "stage1_sam"}) {
    auto cfg = tiny_run(jsonl, stage);
    cfg.train.max_steps = 2;
    const auto r = testing::run_msmedcap("train -c " + write_config(dir, std::string(stage) + ".json", cfg) +
                                         " --run-dir " + dir.file(stage));
    ASSERT_EQ(r.exit_code, 0) << r.err;
  }
  const auto r = testing::run_msmedcap("merge --clip " + dir.file("stage1_clip") + " --sam " + dir.file("stage1_sam") +
                                       " --out " + dir.file("merged.safetensors"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto merged = io::TensorStore::open(dir.file("merged.safetensors")).load_all();
  const auto clip = checkpoint_model(dir.file("stage1_clip")), sam = checkpoint_model(dir.file("stage1_sam"));
  int64_t from_clip = 0, from_sam = 0;
  for (const auto& [name, t] : merged) {
    const bool sam_side = name.rfind("sam_", 0) == 0;
    EXPECT_TRUE(torch::equal(t, (sam_side ? sam : clip).at(name))) << name;
    from_sam += name.rfind("sam_qformer.", 0) == 0;
    from_clip += name.rfind("qformer.", 0) == 0;
  }
  EXPECT_GT(from_clip, 10);
  EXPECT_EQ(from_clip, from_sam);
  EXPECT_EQ(merged.count("sam_query_tokens"), 1u);
  EXPECT_EQ(merged.count("query_tokens"), 1u);

  // Stage 2 starts from the merge (the rest from the seed) and writes its own run.
  auto cfg = tiny_run(jsonl, "stage2");
  cfg.train.max_steps = 2;
  cfg.weights = {config::WeightsSource{dir.file("merged.safetensors"), "", "hf"}};
  cfg.load.allow_missing = {"vision_model.", "sam_model.", "language_model.", "language_projection.",
                            "sam_language_projection."};
  const auto s2 =
      testing::run_msmedcap("train -c " + write_config(dir, "stage2.json", cfg) + " --run-dir " + dir.file("stage2"));
  ASSERT_EQ(s2.exit_code, 0) << s2.err;
  EXPECT_EQ(step_losses(dir.file("stage2")).size(), 2u);
  // A wrong input names what it is.
  const auto bad = testing::run_msmedcap("merge --clip " + dir.file("stage1_sam") + " --sam " + dir.file("stage1_sam") +
                                         " --out " + dir.file("bad.safetensors"));
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_NE(bad.err.find("no qformer.* tensor"), std::string::npos) << bad.err;
  EXPECT_FALSE(fs::exists(dir.file("bad.safetensors")));
}

class TwoProcesses : public ::testing::TestWithParam<std::string> {};

TEST_P(TwoProcesses, GlooEqualsOneProcessOnTheGlobalBatch) {
  testing::TempDir dir;
  const std::string jsonl = make_synth(dir.file("synth"), 24);
  // Short and long captions alternate in file order, so the two ranks' batches (every other
  // sample, unshuffled) pad their texts to different lengths.
  std::istringstream in(testing::read_text(jsonl));
  std::string line, rewritten;
  for (int i = 0; std::getline(in, line); ++i) {
    auto j = config::Json::parse(line);
    if (i % 2 == 0) j["caption"] = "a mass";
    rewritten += j.dump() + "\n";
  }
  testing::write_text(jsonl, rewritten);
  auto cfg = tiny_run(jsonl, GetParam());
  cfg.data.samples_per_epoch = 0;
  cfg.loader.shuffle = false;
  cfg.train.max_steps = 3;
  // Adam moves every weight by about lr whatever its gradient's size, so float noise in a
  // near-zero gradient can move a weight by up to 2 lr: a small lr keeps that below 1e-5.
  cfg.train.optimizer.lr = 2e-5;
  cfg.train.optimizer.min_lr = 1e-6;
  const auto one = write_config(dir, "one.json", cfg);
  cfg.loader.batch_size = 4;
  const auto two = write_config(dir, "two.json", cfg);
  ASSERT_EQ(testing::run_msmedcap("train -c " + one + " --run-dir " + dir.file("one")).exit_code, 0);
  const int port = 29500 + static_cast<int>(::getpid() % 2000);
  const auto r = testing::run_command(std::string(MSMEDCAP_SOURCE_DIR) + "/scripts/launch.sh --nproc 2 --master-port " +
                                      std::to_string(port) + " -- " + MSMEDCAP_BINARY + " train -c " + two +
                                      " --run-dir " + dir.file("two"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("rank 0 of 2"), std::string::npos) << r.err;

  const auto a = step_losses(dir.file("one")), b = step_losses(dir.file("two"));
  ASSERT_EQ(a.size(), 3u);
  ASSERT_EQ(b.size(), 3u);
  for (const auto& [step, loss] : a) EXPECT_NEAR(b.at(step), loss, 1e-5 * std::abs(loss)) << "step " << step;
  const auto pa = checkpoint_model(dir.file("one")), pb = checkpoint_model(dir.file("two"));
  ASSERT_EQ(pa.size(), pb.size());
  double worst = 0;
  for (const auto& [name, t] : pa) worst = std::max(worst, (t - pb.at(name)).abs().max().item<double>());
  EXPECT_LT(worst, 1e-5);
  EXPECT_GT(worst, 0.0);  // the runs really are separate computations
}

INSTANTIATE_TEST_SUITE_P(Train, TwoProcesses, ::testing::Values("stage1_clip", "stage2"));

TEST(TrainCli, SigtermSavesExits143AndResumes) {
  testing::TempDir dir;
  auto cfg = tiny_run(make_synth(dir.file("synth"), 12), "stage1_clip");
  cfg.train.max_steps = 100000;  // stopped long before
  const auto path = write_config(dir, "run.json", cfg);
  const std::string cmd = std::string(MSMEDCAP_BINARY) + " train -c " + path + " --run-dir " + dir.file("run");
  // Wait for three logged steps, then SIGTERM the trainer.
  const auto r =
      testing::run_command("(" + cmd + " & p=$!; for i in $(seq 600); do [ $(grep -c loss " + dir.file("run") +
                           "/metrics.jsonl 2>/dev/null || echo 0) -ge 3 ] && break; sleep 0.1; done; kill -TERM $p; "
                           "wait $p)");
  EXPECT_EQ(r.exit_code, 143) << r.err;
  EXPECT_NE(r.err.find("stopped by signal 15"), std::string::npos) << r.err;
  const auto latest = io::latest_checkpoint(dir.file("run"));
  ASSERT_FALSE(latest.empty());
  const auto losses = step_losses(dir.file("run"));
  EXPECT_NE(latest.find(fmt::format("step-{:09d}", losses.rbegin()->first)), std::string::npos) << latest;
  const auto resumed = testing::run_msmedcap("train --run-dir " + dir.file("run") + " --resume --set train.max_steps=" +
                                             std::to_string(losses.rbegin()->first + 2));
  ASSERT_EQ(resumed.exit_code, 0) << resumed.err;
  EXPECT_NE(resumed.err.find("resumed"), std::string::npos);
  EXPECT_EQ(step_losses(dir.file("run")).size(), losses.size() + 2);
}

}  // namespace
}  // namespace msmedcap
