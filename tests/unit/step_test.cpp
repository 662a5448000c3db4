// The stage plan, the checkpoint state's format, the fp16 loss scaler and the training step
// that `train`, its validation and `bench train-step` share.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include <torch/torch.h>

#include "msmedcap/core/check.h"
#include "msmedcap/core/compat.h"
#include "msmedcap/data/tokenizer.h"
#include "msmedcap/losses/encoder_pretrain.h"
#include "msmedcap/losses/lm.h"
#include "msmedcap/models/layers.h"
#include "msmedcap/models/pretrained.h"
#include "msmedcap/training/communicator.h"
#include "msmedcap/training/loss_scaler.h"
#include "msmedcap/training/optimizer.h"
#include "msmedcap/training/stage_plan.h"
#include "msmedcap/training/stages.h"
#include "msmedcap/training/step.h"
#include "msmedcap/training/trainer_state.h"
#include "test_utils.h"
#include "tiny_models.h"

namespace msmedcap {
namespace {

using config::Branch;
using config::Stage;

using testing::error_of;

TEST(StagePlan, NamesParseOnceAndRoundTrip) {
  for (const char* name : {"stage1_clip", "stage1_sam", "stage2", "caption", "decoder_lm"})
    EXPECT_STREQ(config::stage_name(config::parse_stage(name)), name);
  EXPECT_NE(error_of([] { config::parse_stage("stage3", "train.stage.name"); })
                .find("train.stage.name: expected stage1_clip, stage1_sam, stage2, caption, decoder_lm, clip_pretrain "
                      "or sam_pretrain, got 'stage3'"),
            std::string::npos);
  EXPECT_EQ(config::parse_branch("sam", "--branch"), Branch::kSam);
  EXPECT_STREQ(config::branch_prefix(Branch::kSam), "sam_");
  EXPECT_STREQ(config::branch_prefix(Branch::kClip), "");
  EXPECT_NE(error_of([] {
              config::parse_branch("vit", "retrieve: --branch");
            }).find("retrieve: --branch: expected clip or sam, got 'vit'"),
            std::string::npos);
}

TEST(StagePlan, EachStageSaysWhatItReadsTrainsAndComputes) {
  const auto model = testing::tiny_stage1_config().model;  // both branches
  config::StageConfig s;
  s.name = "stage1_sam";
  training::StagePlan sam(s, model);
  EXPECT_EQ(sam.stage1_branch(), Branch::kSam);
  EXPECT_FALSE(sam.reads(Branch::kClip));
  EXPECT_TRUE(sam.reads(Branch::kSam));
  EXPECT_EQ(sam.tokenizer(), training::TextTokenizer::kQFormer);
  EXPECT_TRUE(sam.losses().itc && sam.losses().itm && sam.losses().itg && !sam.losses().lm);
  EXPECT_TRUE(sam.trains("sam_temp"));
  EXPECT_FALSE(sam.trains("sam_temperature"));  // a prefix without a dot names one tensor
  EXPECT_TRUE(sam.trains("sam_qformer.layer.0.x"));
  EXPECT_FALSE(sam.trains("sam_model.x"));
  EXPECT_TRUE(sam.trains_module("sam_qformer"));
  EXPECT_FALSE(sam.trains_module("qformer"));
  EXPECT_EQ(sam.inputs(), "sam");

  s.name = "stage2";
  training::StagePlan two(s, model);
  EXPECT_FALSE(two.stage1());
  EXPECT_TRUE(two.reads(Branch::kClip) && two.reads(Branch::kSam));
  EXPECT_EQ(two.tokenizer(), training::TextTokenizer::kDecoder);
  EXPECT_TRUE(two.losses().lm && !two.losses().itc);
  EXPECT_EQ(two.trainable_prefixes(),
            (std::vector<std::string>{"qformer.", "query_tokens", "language_projection.", "sam_qformer.",
                                      "sam_query_tokens", "sam_language_projection."}));
  EXPECT_EQ(two.inputs(), "clip, sam");

  s.name = "decoder_lm";
  training::StagePlan lm(s, model);
  EXPECT_TRUE(lm.text_only());
  EXPECT_FALSE(lm.reads(Branch::kClip) || lm.reads(Branch::kSam));
  EXPECT_EQ(lm.trainable_prefixes(), std::vector<std::string>{"language_model."});
  EXPECT_EQ(lm.inputs(), "text");

  s.name = "caption";
  s.train_vision = s.train_llm = true;
  training::StagePlan cap(s, model);
  EXPECT_TRUE(cap.trains("vision_model.encoder.x") && cap.trains("language_model.x"));

  // The stage needs a branch the model has, and options of its own stage.
  auto clip_only = model;
  clip_only.use_sam = false;
  s = config::StageConfig{};
  s.name = "stage1_sam";
  EXPECT_NE(error_of([&] { training::StagePlan(s, clip_only); }).find("model.use_sam"), std::string::npos);
  s.name = "stage2";
  EXPECT_EQ(training::StagePlan(s, clip_only).inputs(), "clip");
  s.train_llm = true;
  EXPECT_NE(error_of([&] { training::StagePlan(s, model); }).find("train.stage.train_llm"), std::string::npos);
}

training::TrainerState sample_state() {
  training::TrainerState s;
  s.step = 12;
  s.epoch = 3;
  s.stage = "stage2";
  s.loader = {{"epoch", 3}, {"batch", 0}};
  s.skipped_steps = 1;
  s.best_step = 10;
  s.best_val_loss = 2.5;
  s.loss_scale = 32768;
  s.good_scaled_steps = 7;
  s.world_size = 2;
  return s;
}

TEST(TrainerState, RoundTripsWithItsVersionAndRefusesOthersByName) {
  const auto j = sample_state().to_json();
  EXPECT_EQ(j.at("format_version"), training::TrainerState::kFormatVersion);
  const auto back = training::TrainerState::from_json(j, "ckpt/state.json");
  EXPECT_EQ(back.to_json(), j);

  auto old = j;
  old.erase("format_version");
  EXPECT_NE(error_of([&] {
              training::TrainerState::from_json(old, "ckpt/state.json");
            }).find("ckpt/state.json: no format_version; it was written by an msmedcap from before"),
            std::string::npos);
  auto newer = j;
  newer["format_version"] = training::TrainerState::kFormatVersion + 1;
  EXPECT_NE(error_of([&] {
              training::TrainerState::from_json(newer, "ckpt/state.json");
            }).find("written by a newer msmedcap"),
            std::string::npos);
  auto missing = j;
  missing.erase("loss_scale");
  EXPECT_NE(error_of([&] { training::TrainerState::from_json(missing, "s.json"); }).find("s.json: no 'loss_scale'"),
            std::string::npos);
  auto unknown = j;
  unknown["lr"] = 1e-4;
  EXPECT_NE(error_of([&] { training::TrainerState::from_json(unknown, "s.json"); }).find("s.json: unknown key 'lr'"),
            std::string::npos);
  auto typed = j;
  typed["step"] = "12";
  EXPECT_NE(error_of([&] { training::TrainerState::from_json(typed, "s.json"); }).find("'step' must be an integer"),
            std::string::npos);
}

TEST(LossScaler, ScalesUnscalesHalvesOnOverflowAndGrows) {
  training::LossScaler off(false);
  EXPECT_EQ(off.scale(), 1.0);
  auto p = torch::ones({3}, torch::requires_grad());
  (p * 2).sum().backward();
  EXPECT_TRUE(off.unscale({p}));
  EXPECT_TRUE(torch::equal(p.grad(), torch::full({3}, 2.0)));  // untouched

  training::LossScaler on(true);
  EXPECT_EQ(on.scale(), training::LossScaler::kInitialScale);
  p.mutable_grad().zero_();
  on.scale_loss((p * 2).sum()).backward();
  EXPECT_TRUE(on.unscale({p}));
  EXPECT_TRUE(torch::equal(p.grad(), torch::full({3}, 2.0)));  // 2 * 65536 / 65536, exact
  EXPECT_EQ(on.good_steps(), 1);

  p.mutable_grad().fill_(std::numeric_limits<float>::infinity());
  EXPECT_FALSE(on.unscale({p}));
  EXPECT_EQ(on.scale(), training::LossScaler::kInitialScale / 2);
  EXPECT_EQ(on.good_steps(), 0);

  on.restore(1024, training::LossScaler::kGrowthInterval - 1);
  p.mutable_grad().fill_(1.0);
  EXPECT_TRUE(on.unscale({p}));
  EXPECT_EQ(on.scale(), 2048);                 // the interval's last clean step doubles it
  EXPECT_THROW(off.restore(65536, 0), Error);  // a scale for a run without fp16
  EXPECT_THROW(on.restore(-1, 0), Error);
}

TEST(LossBreakdown, ReportsTheTermsItsStageComputes) {
  training::LossBreakdown stage1;
  stage1.terms.itc = stage1.terms.itm = stage1.terms.itg = true;
  stage1.set_values({3.0, 1.0, 0.5, 1.5, 0.0, 0.0, 0.0, 0.0, 0.0});
  EXPECT_EQ(stage1.to_json().dump(), R"({"loss":3.0,"itc":1.0,"itm":0.5,"itg":1.5})");
  EXPECT_EQ(stage1.text(), "3 (itc 1 itm 0.5 itg 1.5)");
  training::LossBreakdown lm;
  lm.terms.lm = true;
  lm.set_values({2.0, 0, 0, 0, 2.0, 0, 0, 0, 0});
  EXPECT_EQ(lm.to_json().dump(), R"({"loss":2.0,"lm":2.0})");
  // The encoder-pretraining stages: clip_pretrain's contrastive loss is its ITC, alone;
  // sam_pretrain's the mask loss.
  training::LossBreakdown clip;
  clip.terms.itc = true;
  clip.set_values({1.25, 1.25, 0, 0, 0, 0, 0, 0, 0});
  EXPECT_EQ(clip.to_json().dump(), R"({"loss":1.25,"itc":1.25})");
  EXPECT_EQ(clip.text(), "1.25");
  training::LossBreakdown sam;
  sam.terms.mask = true;
  sam.set_values({0.75, 0, 0, 0, 0, 0.75, 0, 0, 0});
  EXPECT_EQ(sam.to_json().dump(), R"({"loss":0.75,"mask":0.75})");
  EXPECT_EQ(sam.values().size(), training::LossBreakdown::kValues);
  EXPECT_THROW(sam.set_values({1, 2, 3, 4, 5}), Error);
  // With mask_classes, the class loss and the share of images the class head reads.
  sam.terms.mask_class = true;
  sam.set_values({1.25, 0, 0, 0, 0, 0.75, 0.5, 0.25, 0});
  EXPECT_EQ(sam.to_json().dump(), R"({"loss":1.25,"mask":0.75,"mask_class":0.5,"mask_class_acc":0.25})");
  // With mask_classes.places, the place loss too.
  sam.terms.mask_place = true;
  sam.set_values({1.5, 0, 0, 0, 0, 0.75, 0.5, 0.25, 0.125});
  EXPECT_EQ(sam.to_json().dump(),
            R"({"loss":1.5,"mask":0.75,"mask_class":0.5,"mask_class_acc":0.25,"mask_place":0.125})");
}

TEST(StagePlan, EncoderPretrainingStagesTrainTheirEncoderAndHead) {
  const auto model = testing::tiny_stage1_config().model;  // both branches
  config::StageConfig s;
  s.name = "clip_pretrain";
  const training::StagePlan clip(s, model);
  EXPECT_EQ(clip.encoder_pretrain_branch(), Branch::kClip);
  EXPECT_EQ(clip.qformer_text_branch(), Branch::kClip);
  EXPECT_EQ(clip.tokenizer(), training::TextTokenizer::kQFormer);
  EXPECT_TRUE(clip.reads(Branch::kClip));
  EXPECT_FALSE(clip.reads(Branch::kSam));
  EXPECT_TRUE(clip.losses().itc && !clip.losses().itm && !clip.losses().lm);
  EXPECT_TRUE(clip.trains("vision_model.encoder.layers.0.mlp.fc1.weight"));
  EXPECT_TRUE(clip.trains("clip_pretrain_projection.weight"));
  EXPECT_FALSE(clip.trains("query_tokens"));
  EXPECT_FALSE(clip.reads_masks());
  s.name = "sam_pretrain";
  const training::StagePlan sam(s, model);
  EXPECT_EQ(sam.encoder_pretrain_branch(), Branch::kSam);
  EXPECT_FALSE(sam.qformer_text_branch().has_value());
  EXPECT_EQ(sam.tokenizer(), training::TextTokenizer::kNone);
  EXPECT_TRUE(sam.reads_masks());
  EXPECT_TRUE(sam.losses().mask && !sam.losses().itc);
  EXPECT_TRUE(sam.trains("sam_model.vision_encoder.neck.conv1.weight"));
  EXPECT_TRUE(sam.trains("sam_pretrain_decoder.bias"));
  EXPECT_FALSE(sam.trains("sam_qformer.layer.0.x"));
  auto clip_off = model;
  clip_off.use_clip = false;
  s.name = "clip_pretrain";
  EXPECT_NE(error_of([&] { training::StagePlan p(s, clip_off); }).find("model.use_clip turns off"), std::string::npos);
}

TEST(StagePlan, MaskClassesReadTheClassFromTheCaption) {
  const auto model = testing::tiny_stage1_config().model;
  config::StageConfig s;
  s.name = "sam_pretrain";
  EXPECT_EQ(training::StagePlan(s, model).mask_classes(), 0);
  EXPECT_FALSE(training::StagePlan(s, model).reads_captions());
  s.mask_classes.rules = std::string(MSMEDCAP_SOURCE_DIR) + "/configs/attributes/synthetic.json";
  const training::StagePlan plan(s, model);
  // Background (the attribute's absent value, "normal") and the rule file's five finding types.
  EXPECT_EQ(plan.mask_classes(), 6);
  EXPECT_TRUE(plan.reads_captions());
  EXPECT_TRUE(plan.losses().mask && plan.losses().mask_class);
  EXPECT_TRUE(plan.trains("sam_pretrain_classes.weight"));
  EXPECT_EQ(plan.mask_class("chest x ray showing a small nodule in the left upper lobe"), 1);
  EXPECT_EQ(plan.mask_class("axial ct two large calcifications in the right lower zone"), 5);
  EXPECT_EQ(plan.mask_class("normal chest radiograph"), 0);
  EXPECT_EQ(plan.mask_class("brain mri without mass"), 0);  // negated
  // Split by size too: the five types, each with no size read, small or large (the rule file's
  // order), and background: 16 classes.
  auto by_size = s;
  by_size.mask_classes.also = {"size"};
  const training::StagePlan sized(by_size, model);
  EXPECT_EQ(sized.mask_classes(), 16);
  EXPECT_EQ(sized.mask_class("chest x ray showing a small nodule in the left upper lobe"), 2);
  EXPECT_EQ(sized.mask_class("axial ct two large calcifications in the right lower zone"), 15);
  EXPECT_EQ(sized.mask_class("a nodule in the left upper lobe"), 1);
  EXPECT_EQ(sized.mask_class("normal chest radiograph"), 0);
  EXPECT_EQ(sized.mask_places(), 0);
  EXPECT_FALSE(sized.losses().mask_place || sized.trains("sam_pretrain_places.weight"));
  // With places [2, 3], a head over 6 cells, which trains.
  auto placed = by_size;
  placed.mask_classes.places = {2, 3};
  const training::StagePlan with_places(placed, model);
  EXPECT_EQ(with_places.mask_places(), 6);
  EXPECT_TRUE(with_places.losses().mask_place && with_places.trains("sam_pretrain_places.bias"));
  // place_weight: > 0, or -1 for the class weight; without places it has nothing to weigh.
  for (double bad : {0.0, -2.0, std::nan("")}) {
    placed.mask_classes.place_weight = bad;
    EXPECT_NE(error_of([&] { training::StagePlan p(placed, model); }).find("mask_classes.place_weight: must be > 0"),
              std::string::npos)
        << bad;
  }
  placed.mask_classes.place_weight = 2;
  EXPECT_EQ(training::StagePlan(placed, model).mask_places(), 6);
  auto unplaced = placed;
  unplaced.mask_classes.places.clear();
  EXPECT_NE(error_of([&] { training::StagePlan p(unplaced, model); }).find("place_weight: needs mask_classes.places"),
            std::string::npos);
  placed.mask_classes.place_weight = -1;
  for (const auto& bad : std::vector<std::vector<int64_t>>{{2}, {0, 3}, {1, 1}, {17, 1}, {2, 3, 1}}) {
    placed.mask_classes.places = bad;
    EXPECT_NE(error_of([&] { training::StagePlan p(placed, model); }).find("train.stage.mask_classes.places: expected"),
              std::string::npos);
  }
  by_size.mask_classes.also = {"sizes"};
  EXPECT_NE(error_of([&] { training::StagePlan p(by_size, model); }).find("mask_classes.also: "), std::string::npos);
  by_size.mask_classes.also = {"finding"};
  EXPECT_NE(error_of([&] { training::StagePlan p(by_size, model); }).find("'finding' named twice"), std::string::npos);
  // The attribute must be in the file; only sam_pretrain has the head; ids are 8-bit.
  s.mask_classes.attribute = "findings";
  EXPECT_NE(error_of([&] { training::StagePlan p(s, model); }).find("has no attribute 'findings'"), std::string::npos);
  s.mask_classes.attribute = "finding";
  s.mask_classes.first_id = 256;
  EXPECT_NE(error_of([&] { training::StagePlan p(s, model); }).find("train.stage.mask_classes.first_id"),
            std::string::npos);
  s.mask_classes.first_id = 10;
  s.name = "stage2";
  EXPECT_NE(
      error_of([&] { training::StagePlan p(s, model); }).find("train.stage.mask_classes.rules: only sam_pretrain"),
      std::string::npos);
  s.name = "sam_pretrain";
  auto no_rules = s;  // the head's settings without a rule file would be ignored: refused
  no_rules.mask_classes.rules.clear();
  EXPECT_NE(error_of([&] { training::StagePlan p(no_rules, model); }).find("need mask_classes.rules"),
            std::string::npos);
  s.mask_classes.rules = "/nonexistent/rules.json";
  EXPECT_NE(error_of([&] { training::StagePlan p(s, model); }).find("/nonexistent/rules.json"), std::string::npos);
}

TEST(StepInputs, AgreeBatchSizeTrimsEveryPerSampleTensor) {
  // A communicator whose other ranks have 2 samples: this rank's batch of 3 is cut to 2, the
  // sam_pretrain masks with the images.
  struct TwoSamples : training::Communicator {
    int64_t rank() const override { return 0; }
    int64_t world_size() const override { return 2; }
    void sum(std::vector<double>&) override {}
    int64_t min(int64_t value) override { return std::min<int64_t>(value, 2); }
    void average_gradients(const std::vector<at::Tensor>&, int64_t) override {}
    void broadcast_parameters(const std::vector<at::Tensor>&) override {}
    void barrier() override {}
    losses::Collectives collectives() override { return {}; }
  } comm;
  data::Batch batch;
  batch.samples.resize(3);
  batch.positions = {0, 1, 2};
  batch.sam = torch::zeros({3, 3, 8, 8});
  batch.masks = torch::zeros({3, 8, 8}, torch::kLong);
  EXPECT_EQ(training::agree_batch_size(batch, comm), 2);
  EXPECT_EQ(batch.samples.size(), 2u);
  EXPECT_EQ(batch.sam.size(0), 2);
  EXPECT_EQ(batch.masks.size(0), 2);
  EXPECT_FALSE(batch.clip.defined());
}

/// The tiny composite with the stage's plan applied, its optimiser and a runner over them.
struct StepFixture {
  explicit StepFixture(const std::string& stage, int64_t grad_accum = 1, bool dropout = true,
                       const std::string& precision = "fp32")
      : cfg(testing::tiny_stage1_config()) {
    cfg.train.precision = precision;
    if (!dropout) {
      for (auto* q : {&cfg.model.qformer, &cfg.model.sam_qformer})
        q->hidden_dropout_prob = q->attention_probs_dropout_prob = 0;
    }
    cfg.train.stage.name = stage;
    cfg.train.grad_accum = grad_accum;
    cfg.train.optimizer.warmup_steps = 0;
    plan = std::make_unique<training::StagePlan>(cfg.train.stage, cfg.model);
    torch::manual_seed(11);
    model = models::build_model(cfg.model);
    params = training::apply_stage(*model, *plan);
    for (const auto& [name, p] : params) tensors.push_back(p);
    optimizer = std::make_unique<training::Optimizer>(params, cfg.train.optimizer);
    optimizer->set_lr(1e-3);
    runner = std::make_unique<training::StepRunner>(*model, *plan, cfg.train, 5, c10::Device(c10::kCPU), *comm,
                                                    *optimizer, tensors, nullptr, cfg.model.qformer.vocab_size - 1);
  }
  training::StepInputs inputs() const {
    torch::manual_seed(3);
    training::StepInputs in;
    in.images.clip_pixels = torch::randn({4, 3, 32, 32});
    in.images.sam_pixels = torch::randn({4, 3, 64, 64});
    in.text_ids = torch::randint(5, 900, {4, 6}, torch::kLong);  // below both vocabularies' 1000
    in.text_mask = torch::ones({4, 6}, torch::kLong);
    in.positions = {0, 1, 2, 3};
    return in;
  }
  config::RunConfig cfg;
  std::unique_ptr<training::StagePlan> plan;
  models::MsMedCapModel model{nullptr};
  std::vector<std::pair<std::string, torch::Tensor>> params;
  std::vector<at::Tensor> tensors;
  std::unique_ptr<training::Optimizer> optimizer;
  std::unique_ptr<training::Communicator> comm = training::local_communicator();
  std::unique_ptr<training::StepRunner> runner;
};

TEST(StepRunner, AStepIsTheLossesBackwardAndOneAdamWUpdate) {
  for (const char* stage : {"stage1_clip", "stage2"}) {
    StepFixture a(stage), b(stage);
    const auto in = a.inputs();
    // By hand: the stage's losses, backward, AdamW.
    b.optimizer->zero_grad();
    auto [loss, values] = b.runner->losses(in, core::mix_seed(5, 0, 0));
    loss.backward();
    b.optimizer->step();
    const auto r = a.runner->step([&](int64_t) { return std::optional<training::StepInputs>(in); }, 0);
    EXPECT_TRUE(r.updated) << stage;
    EXPECT_TRUE(r.nonfinite.empty()) << r.nonfinite;
    EXPECT_EQ(r.images, 4);
    EXPECT_DOUBLE_EQ(r.losses.total, values.total) << stage;
    EXPECT_GT(r.grad_norm, 0.0);
    for (size_t i = 0; i < a.tensors.size(); ++i)
      EXPECT_TRUE(torch::equal(a.tensors[i], b.tensors[i])) << stage << " " << a.params[i].first;
  }
}

TEST(StepRunner, AccumulatedMicroBatchesAverageAndANonFiniteLossUpdatesNothing) {
  // Two equal micro-batches are one batch: the same mean loss and (to rounding) the same update
  // (without dropout, whose masks differ per micro-batch).
  StepFixture one("stage2", 1, false), two("stage2", 2, false);
  const auto in = one.inputs();
  const auto r1 = one.runner->step([&](int64_t) { return std::optional<training::StepInputs>(in); }, 0);
  const auto r2 = two.runner->step([&](int64_t) { return std::optional<training::StepInputs>(in); }, 0);
  EXPECT_NEAR(r2.losses.total, r1.losses.total, 1e-6);
  EXPECT_EQ(r2.images, 8);
  for (size_t i = 0; i < one.tensors.size(); ++i)
    EXPECT_TRUE(torch::allclose(one.tensors[i], two.tensors[i], 1e-5, 1e-6));

  StepFixture nan("stage2");
  std::vector<at::Tensor> before;
  for (const auto& t : nan.tensors) before.push_back(t.clone());
  nan.runner->on_loss = [](int64_t, at::Tensor& loss) { loss = loss * std::nan(""); };
  bool asked = false;
  const auto r = nan.runner->step([&](int64_t) { return std::optional<training::StepInputs>(in); }, 7,
                                  [&] {
                                    asked = true;
                                    return true;
                                  });
  EXPECT_NE(r.nonfinite.find("non-finite loss at step 7"), std::string::npos) << r.nonfinite;
  EXPECT_FALSE(r.updated);
  EXPECT_TRUE(asked && r.stop_requested);
  for (size_t i = 0; i < before.size(); ++i)
    EXPECT_TRUE(torch::equal(before[i], nan.tensors[i])) << nan.params[i].first;
}

TEST(StepRunner, WordDropoutChangesWhatTheDecoderReadsWhileTrainingOnly) {
  // stage2 with train.word_dropout 0.5: the training loss is caption_loss over drop_words' inputs
  // (the tokenizer's unknown token, keyed by the step seed and the sample positions); validation
  // (training false) reads the real words, as a run without word dropout does.
  StepFixture plain("stage2", 1, false), dropping("stage2", 1, false);
  dropping.cfg.train.word_dropout = 0.5;
  const auto tokenizer = data::load_tokenizer(testing::data_path("tokenizers/opt"));
  training::StepRunner runner(*dropping.model, *dropping.plan, dropping.cfg.train, 5, c10::Device(c10::kCPU),
                              *dropping.comm, *dropping.optimizer, dropping.tensors, tokenizer.get(),
                              dropping.cfg.model.qformer.vocab_size - 1);
  auto in = plain.inputs();
  in.prompt_lengths = {0, 2, 0, 1};
  const uint64_t seed = core::mix_seed(5, 0, 0);
  const double real = plain.runner->losses(in, seed).first.item<double>();
  EXPECT_DOUBLE_EQ(runner.losses(in, seed, false).first.item<double>(), real);
  const double trained = runner.losses(in, seed).first.item<double>();
  EXPECT_GT(std::abs(trained - real), 1e-4);
  torch::NoGradGuard no_grad;
  const auto prefix = dropping.model->encode(in.images);
  const auto read =
      losses::drop_words(in.text_ids, in.text_mask, in.prompt_lengths, 0.5, tokenizer->unk_id(), seed, in.positions);
  EXPECT_NEAR(
      trained,
      losses::caption_loss(*dropping.model, &prefix, in.text_ids, in.text_mask, in.prompt_lengths, read).item<double>(),
      1e-6);
  // Without a tokenizer there is no unknown token to read.
  EXPECT_NE(error_of([&] {
              training::StepRunner(*dropping.model, *dropping.plan, dropping.cfg.train, 5, c10::Device(c10::kCPU),
                                   *dropping.comm, *dropping.optimizer, dropping.tensors, nullptr, 0);
            }).find("train.word_dropout: needs the decoder's tokenizer"),
            std::string::npos);
}

TEST(StepRunner, MirrorMirrorsTheMarkedRowsOfPixelsEmbeddingsAndTheClipGrid) {
  models::ImageInputs in;
  in.clip_pixels = torch::randn({2, 3, 4, 4});
  in.sam_embeddings = torch::randn({2, 5, 3, 3});
  in.clip_features = torch::randn({2, 10, 6});  // a class token, then a 3 x 3 grid
  const auto rows = torch::tensor({true, false});
  const auto out = training::mirror_left_right(in, rows);
  EXPECT_TRUE(torch::equal(out.clip_pixels[0], in.clip_pixels[0].flip({-1})));
  EXPECT_TRUE(torch::equal(out.clip_pixels[1], in.clip_pixels[1]));
  EXPECT_TRUE(torch::equal(out.sam_embeddings[0], in.sam_embeddings[0].flip({-1})));
  EXPECT_TRUE(torch::equal(out.sam_embeddings[1], in.sam_embeddings[1]));
  EXPECT_FALSE(out.sam_pixels.defined());
  EXPECT_TRUE(torch::equal(out.clip_features[0][0], in.clip_features[0][0]));
  for (int64_t r = 0; r < 3; ++r)
    for (int64_t c = 0; c < 3; ++c)
      EXPECT_TRUE(torch::equal(out.clip_features[0][1 + r * 3 + c], in.clip_features[0][1 + r * 3 + 2 - c])) << r << c;
  EXPECT_TRUE(torch::equal(out.clip_features[1], in.clip_features[1]));
  models::ImageInputs grid_only;  // no class token
  grid_only.clip_features = torch::randn({1, 4, 2});
  const auto g = training::mirror_left_right(grid_only, torch::tensor({true})).clip_features[0];
  EXPECT_TRUE(torch::equal(g[0], grid_only.clip_features[0][1]) && torch::equal(g[3], grid_only.clip_features[0][2]));
  grid_only.clip_features = torch::randn({1, 7, 2});
  EXPECT_NE(error_of([&] { training::mirror_left_right(grid_only, torch::tensor({true})); }).find("not a square grid"),
            std::string::npos);
  // The draw: keyed by the seed and the position, about half of the rows.
  std::vector<int64_t> positions(400);
  for (int64_t i = 0; i < 400; ++i) positions[static_cast<size_t>(i)] = i;
  const auto a = training::mirrored_rows(3, positions), b = training::mirrored_rows(4, positions);
  EXPECT_TRUE(torch::equal(a, training::mirrored_rows(3, positions)));
  EXPECT_FALSE(torch::equal(a, b));
  EXPECT_NEAR(a.sum().item<double>(), 200, 40);
}

TEST(StepRunner, MirrorUnscoredWordsMirrorsTrainingRowsAndLeavesTheirSideWordsOutOfTheLoss) {
  // stage2 with train.mirror_unscored_words: the training loss is caption_loss over the images
  // with the drawn rows mirrored and, in those rows only, the words' tokens unscored; validation
  // reads the images as they are, as a run without it does.
  StepFixture plain("stage2", 1, false), mirroring("stage2", 1, false);
  mirroring.cfg.train.mirror_unscored_words = {"left", "right"};
  const auto tokenizer = data::load_tokenizer(testing::data_path("tokenizers/opt"));
  training::StepRunner runner(*mirroring.model, *mirroring.plan, mirroring.cfg.train, 5, c10::Device(c10::kCPU),
                              *mirroring.comm, *mirroring.optimizer, mirroring.tensors, tokenizer.get(),
                              mirroring.cfg.model.qformer.vocab_size - 1);
  auto in = plain.inputs();
  const int64_t left = tokenizer->encode("a left", false).back(), right = tokenizer->encode("a right", false).back();
  ASSERT_LT(std::max(left, right), 1000);  // within the tiny decoder's vocabulary
  in.text_ids[0][2] = left;
  in.text_ids[1][3] = right;
  in.text_ids[2][1] = left;
  in.text_ids[3][4] = right;
  uint64_t seed = 0;
  torch::Tensor rows;
  do {
    rows = training::mirrored_rows(++seed, in.positions);
  } while (!rows.any().item<bool>() || rows.all().item<bool>());
  EXPECT_DOUBLE_EQ(runner.losses(in, seed, false).first.item<double>(),
                   plain.runner->losses(in, seed, false).first.item<double>());
  const double trained = runner.losses(in, seed).first.item<double>();
  EXPECT_GT(std::abs(trained - plain.runner->losses(in, seed).first.item<double>()), 1e-4);
  torch::NoGradGuard no_grad;
  const auto prefix = mirroring.model->encode(training::mirror_left_right(in.images, rows));
  const auto unscored = rows.unsqueeze(1) & (in.text_ids.eq(left) | in.text_ids.eq(right));
  ASSERT_TRUE(unscored.any().item<bool>());
  EXPECT_NEAR(
      trained,
      losses::caption_loss(*mirroring.model, &prefix, in.text_ids, in.text_mask, {}, {}, unscored).item<double>(),
      1e-6);
  // A word that is no single token of the tokenizer cannot be found in the captions: refused.
  mirroring.cfg.train.mirror_unscored_words = {"left", "pneumothoraces"};
  EXPECT_NE(error_of([&] {
              training::StepRunner(*mirroring.model, *mirroring.plan, mirroring.cfg.train, 5, c10::Device(c10::kCPU),
                                   *mirroring.comm, *mirroring.optimizer, mirroring.tensors, tokenizer.get(), 0);
            }).find("'pneumothoraces' is not a single token"),
            std::string::npos);
}

TEST(StepRunner, MaskSymmetriesUntilTurnsTheImagesForThatShareOfTheStepsOnly) {
  // sam_pretrain with mask_symmetries and mask_symmetries_until 0.5: before half of the steps the
  // loss is that of the turned images (the turns mask_turns names), from half on that of the
  // images as they are.
  StepFixture f("sam_pretrain");
  f.cfg.train.stage.mask_symmetries = true;
  f.cfg.train.stage.mask_turns = {"up_down", "transpose"};
  f.cfg.train.stage.mask_symmetries_until = 0.5;
  auto in = f.inputs();
  in.masks = torch::full({4, 64, 64}, 3, torch::kLong);
  for (int64_t i = 0; i < 4; ++i) in.masks[i].slice(0, 4 * i, 9 + 4 * i).slice(1, 2 + 5 * i, 12 + 3 * i).fill_(10 + i);
  torch::NoGradGuard no_grad;
  for (auto& p : f.model->sam_pretrain_decoder->parameters()) p.mul_(4);  // masks that differ by place
  const uint64_t seed = core::mix_seed(5, 0, 0);
  losses::SamPretrainOptions options;
  const auto direct = [&](int turns) {
    options.turns = turns;
    return losses::sam_pretrain_loss(*f.model, in.images, in.masks, seed, options).total.item<double>();
  };
  const double turned = direct(6), plain = direct(0);
  EXPECT_GT(std::abs(turned - plain), 1e-4);
  f.runner->set_progress(0.0);
  EXPECT_EQ(f.runner->mask_turns_now(), 6);
  EXPECT_NEAR(f.runner->losses(in, seed).first.item<double>(), turned, 1e-6);
  f.runner->set_progress(0.49);
  EXPECT_NEAR(f.runner->losses(in, seed).first.item<double>(), turned, 1e-6);
  f.runner->set_progress(0.5);
  EXPECT_EQ(f.runner->mask_turns_now(), 0);
  EXPECT_NEAR(f.runner->losses(in, seed).first.item<double>(), plain, 1e-6);
  f.cfg.train.stage.mask_symmetries = false;
  f.runner->set_progress(0.0);
  EXPECT_EQ(f.runner->mask_turns_now(), 0);
}

TEST(StepRunner, Bf16AutocastOnTheCpuRunsTheProductsInBf16AndKeepsFloat32Weights) {
  // The scope itself: a product comes out in bf16, a LayerNorm (whose weights stay float32) takes
  // it and gives float32, and leaving the scope turns autocast off again.
  {
    models::Linear linear(8, 8);
    models::LayerNorm norm(torch::nn::LayerNormOptions({8}));
    const auto x = torch::randn({2, 8});
    core::AutocastScope scope(true, c10::kBFloat16, c10::DeviceType::CPU);
    const auto y = linear(x);
    EXPECT_EQ(y.scalar_type(), torch::kBFloat16);
    const auto z = norm(y);
    EXPECT_EQ(z.scalar_type(), torch::kFloat);
    EXPECT_TRUE(torch::allclose(z, norm(y.to(torch::kFloat)), 0, 0));
  }
  EXPECT_EQ(models::Linear(8, 8)(torch::randn({2, 8})).scalar_type(), torch::kFloat);
  EXPECT_NE(error_of([] {
              core::AutocastScope scope(true, c10::kHalf, c10::DeviceType::CPU);
            }).find("autocast on the CPU runs bf16 only"),
            std::string::npos);
  EXPECT_NE(error_of([] { StepFixture fp16("stage2", 1, true, "fp16"); }).find("fp16 needs a CUDA device"),
            std::string::npos);

  // A step under train.precision bf16 against the same step in float32: the losses differ by
  // bf16's rounding only (8 significant bits: well under 1%), the weights stay float32, and the
  // AdamW updates point the same way.
  for (const char* stage : {"stage1_clip", "stage1_sam", "stage2"}) {
    StepFixture full(stage, 1, false), half(stage, 1, false, "bf16");
    const auto in = full.inputs();
    std::vector<at::Tensor> before;
    for (const auto& t : full.tensors) before.push_back(t.clone());
    const auto rf = full.runner->step([&](int64_t) { return std::optional<training::StepInputs>(in); }, 0);
    const auto rh = half.runner->step([&](int64_t) { return std::optional<training::StepInputs>(in); }, 0);
    ASSERT_TRUE(rf.updated && rh.updated) << stage << " " << rh.nonfinite;
    EXPECT_NE(rh.losses.total, rf.losses.total) << stage << ": the bf16 step computed in float32";
    EXPECT_NEAR(rh.losses.total, rf.losses.total, 0.01 * std::abs(rf.losses.total)) << stage;
    std::vector<at::Tensor> df, dh;
    for (size_t i = 0; i < before.size(); ++i) {
      EXPECT_EQ(half.tensors[i].scalar_type(), torch::kFloat) << stage << " " << half.params[i].first;
      df.push_back((full.tensors[i] - before[i]).flatten());
      dh.push_back((half.tensors[i] - before[i]).flatten());
    }
    const auto a = torch::cat(df), b = torch::cat(dh);
    const double cosine = (a * b).sum().item<double>() / (a.norm() * b.norm()).item<double>();
    EXPECT_GT(cosine, 0.9) << stage;
  }
}

}  // namespace
}  // namespace msmedcap
