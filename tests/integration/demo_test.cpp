// scripts/demo.sh, shortened (fewer studies, half the epochs), end to end: every stage
// trains (the encoders' pretraining first), the test split is captioned and scored beside the
// baselines, the trained model's attributes beat its own language prior's (the zeroed prefix),
// and the report with its plots and attention maps is written.
#include <gtest/gtest.h>

#include <filesystem>
#include <set>
#include <sstream>

#include <nlohmann/json.hpp>
#include <opencv2/imgcodecs.hpp>

#include "test_utils.h"

namespace msmedcap {
namespace {

namespace fs = std::filesystem;

TEST(Demo, ShortenedDemoTrainsScoresAndReports) {
  testing::TempDir dir;
  const std::string out = dir.file("demo");
  const auto r = testing::run_command(std::string("SKIP_INSTALL=1 MSMEDCAP_BIN=") + MSMEDCAP_BINARY +
                                      " DEMO_OUT=" + out + " SYNTH_N=240 EPOCH_SCALE=0.5 BATCH_SIZE=8 WARMUP_STEPS=5 " +
                                      MSMEDCAP_SOURCE_DIR + "/scripts/demo.sh");
  ASSERT_EQ(r.exit_code, 0) << r.out.substr(r.out.size() > 3000 ? r.out.size() - 3000 : 0)
                            << r.err.substr(r.err.size() > 3000 ? r.err.size() - 3000 : 0);

  for (const char* stage :
       {"clip-pretrain", "sam-pretrain", "decoder-lm", "stage1-clip", "stage1-sam", "stage2", "caption"})
    EXPECT_TRUE(fs::exists(out + "/runs/" + stage + "/checkpoints/latest")) << stage;
  // The stages after encoder pretraining read the frozen encoders' outputs, cached once per split.
  for (const char* cache : {"train/clip", "train/sam", "val/clip", "val/sam"})
    EXPECT_TRUE(fs::exists(out + "/runs/features/" + cache + "/model.safetensors.index.json")) << cache;
  for (const char* stage : {"stage1-clip", "stage1-sam", "stage2", "caption"}) {
    const auto cfg = nlohmann::json::parse(testing::read_text(out + "/runs/" + stage + "/config.json"));
    EXPECT_EQ(cfg["data"]["feature_cache"], out + "/runs/features/train") << stage;
    EXPECT_EQ(cfg["val_data"]["feature_cache"], out + "/runs/features/val") << stage;
  }

  // Scores: the trained model writes the captions' words; the random one does not.
  auto corpus = [&](const std::string& name) {
    return nlohmann::json::parse(testing::read_text(out + "/" + name + ".eval.json"));
  };
  const auto trained = corpus("trained"), untrained = corpus("untrained"), baseline = corpus("baseline");
  EXPECT_GT(trained["Bleu_1"].get<double>(), untrained["Bleu_1"].get<double>() + 0.1);
  EXPECT_GT(trained["CIDEr"].get<double>(), untrained["CIDEr"].get<double>());
  // The baseline: one caption, the same for every test study.
  std::set<std::string> constant;
  int64_t predictions = 0;
  std::istringstream lines(testing::read_text(out + "/baseline.jsonl"));
  for (std::string line; std::getline(lines, line); ++predictions)
    constant.insert(nlohmann::json::parse(line)["caption"]);
  EXPECT_EQ(constant.size(), 1u);
  EXPECT_GT(baseline["CIDEr"].get<double>(), 0.0);
  // The attributes the captions name: the trained model reads more of them right than its
  // language prior alone does (the same model with zeros for its visual prefix).
  const auto zero = corpus("zero-prefix");
  auto mean_accuracy = [](const nlohmann::json& scores) {
    double sum = 0;
    for (const char* a : {"modality", "finding", "side", "zone", "size", "count"})
      sum += scores[std::string(a) + "_acc"].get<double>();
    return sum / 6;
  };
  EXPECT_GT(mean_accuracy(trained), mean_accuracy(zero) + 0.05)
      << "trained " << trained.dump() << "\nzeroed prefix " << zero.dump();
  EXPECT_EQ(corpus("baseline-modality")["modality_acc"].get<double>(), 1.0);  // given the true modality
  // The breakdowns cover every test study.
  int64_t by_size = 0;
  for (const auto& [group, scores] : trained["groups"]["size"].items()) by_size += scores["n"].get<int64_t>();
  const auto test_studies = static_cast<int64_t>(testing::count_lines(testing::read_text(out + "/synth/test.jsonl")));
  EXPECT_EQ(by_size, test_studies);
  EXPECT_EQ(predictions, test_studies);
  // The test_seen split (unseen studies of seen combinations) is scored on its own studies.
  const auto seen_studies =
      static_cast<int64_t>(testing::count_lines(testing::read_text(out + "/synth/test_seen.jsonl")));
  EXPECT_GT(seen_studies, 0);
  for (const char* name : {"trained-seen", "nearest-seen"}) {
    const auto seen = corpus(name);  // named: a temporary would end before the loop reads it
    int64_t n = 0;
    for (const auto& [group, scores] : seen["groups"]["size"].items()) n += scores["n"].get<int64_t>();
    EXPECT_EQ(n, seen_studies) << name;
  }

  // The report, its figures and the examples' attention maps.
  const std::string report = testing::read_text(out + "/report.md");
  for (const char* part :
       {"## Scores", "| MSMedCap (trained) |", "| untrained |", "| most frequent caption |", "| zeroed prefix |",
        "| most frequent caption per modality |", "| MSMedCap (trained), test_seen |",
        "| nearest training image, test_seen |", "finding_acc", "### CIDEr by size", "### finding_acc by size",
        "## Where the Q-Formers look", "| sam |", "## Figures", "## Examples", "](loss.png)"})
    EXPECT_NE(report.find(part), std::string::npos) << part;
  for (const char* png : {"loss.png", "val_loss.png", "val_metrics.png"}) {
    const cv::Mat img = cv::imread(out + "/" + png);
    EXPECT_FALSE(img.empty()) << png;
  }
  int64_t maps = 0;
  for (const auto& e : fs::directory_iterator(out + "/attention")) maps += e.path().extension() == ".png";
  EXPECT_GE(maps, 4);                                       // two branches for at least two examples
  EXPECT_NE(r.out.find("## Examples"), std::string::npos);  // printed too
}

TEST(Demo, ShortenedAblationPairsDualWithClipOnly) {
  testing::TempDir dir;
  const std::string out = dir.file("ablation");
  const auto r =
      testing::run_command(std::string("SKIP_INSTALL=1 MSMEDCAP_BIN=") + MSMEDCAP_BINARY + " ABLATION_OUT=" + out +
                           " SEEDS=1 VARIANTS='clip-only dual' SYNTH_N=240 EPOCH_SCALE=0.25 " +
                           "BATCH_SIZE=8 WARMUP_STEPS=5 " + MSMEDCAP_SOURCE_DIR + "/scripts/experiment_ablation.sh");
  ASSERT_EQ(r.exit_code, 0) << r.out.substr(r.out.size() > 3000 ? r.out.size() - 3000 : 0)
                            << r.err.substr(r.err.size() > 3000 ? r.err.size() - 3000 : 0);
  // The paired comparison covers every small-finding test study once per seed.
  int64_t small = 0;
  std::istringstream lines(testing::read_text(out + "/synth/test.jsonl"));
  for (std::string line; std::getline(lines, line);) small += nlohmann::json::parse(line)["size"] == "small";
  const auto cmp = nlohmann::json::parse(testing::read_text(out + "/compare.json"));
  EXPECT_EQ(cmp["n"].get<int64_t>(), small);
  EXPECT_LE(cmp["low"].get<double>(), cmp["difference"].get<double>());
  EXPECT_GE(cmp["high"].get<double>(), cmp["difference"].get<double>());
  // The variants of a seed share its pretrained encoders: trained once, loaded by both.
  for (const char* run : {"clip-pretrain", "sam-pretrain"}) {
    EXPECT_TRUE(std::filesystem::exists(out + "/encoders-seed1/" + run + "/done")) << run;
    EXPECT_FALSE(std::filesystem::exists(out + "/dual-seed1/" + run)) << run;
  }
  for (const char* variant : {"clip-only", "dual"})
    EXPECT_NE(testing::read_text(out + "/" + variant + "-seed1/caption/config.json")
                  .find(out + "/encoders-seed1/clip-pretrain"),
              std::string::npos)
        << variant;
  const std::string report = testing::read_text(out + "/report.md");
  for (const char* part : {"| clip-only |", "| dual |", "finding_acc", "Dual (b) against clip-only (a)"})
    EXPECT_NE(report.find(part), std::string::npos) << part;
}

}  // namespace
}  // namespace msmedcap
