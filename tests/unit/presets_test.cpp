// Every preset under configs/ resolves and validates; model presets build on the tiny scale.
#include <gtest/gtest.h>

#include <filesystem>

#include "msmedcap/config/config_io.h"
#include "msmedcap/config/run_config.h"
#include "msmedcap/inference/search.h"

namespace msmedcap::config {
namespace {

std::vector<std::string> files_in(const std::string& sub) {
  std::vector<std::string> out;
  for (const auto& e : std::filesystem::directory_iterator(std::string(MSMEDCAP_SOURCE_DIR) + "/configs/" + sub)) {
    if (e.path().extension() == ".json") out.push_back(e.path().string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

TEST(Presets, EveryRunConfigPresetResolves) {
  int n = 0;
  for (const std::string sub : {"runtime", "models", "weights", "data", "stages", "demo", "bench"}) {
    for (const auto& file : files_in(sub)) {
      RunConfig cfg;
      EXPECT_NO_THROW(resolve_config(cfg, {{file}, {}})) << file;
      ++n;
    }
  }
  EXPECT_GE(n, 24);
}

TEST(Presets, DemoStagesLayerOverTheRecipes) {
  // As scripts/lib/pipeline.sh layers them: model, variant, stage recipe, demo override.
  const std::string root = std::string(MSMEDCAP_SOURCE_DIR) + "/configs/";
  const std::vector<std::pair<std::string, std::string>> stages = {{"", "demo/decoder-lm.json"},
                                                                   {"stages/stage1-clip.json", "demo/stage1.json"},
                                                                   {"stages/stage1-sam.json", "demo/stage1.json"},
                                                                   {"stages/stage2.json", "demo/stage2.json"},
                                                                   {"stages/caption.json", "demo/caption.json"}};
  for (const char* variant : {"dual", "clip-only", "sam-only"}) {
    for (const auto& [recipe, demo] : stages) {
      std::vector<std::string> files = {root + "demo/model.json", root + "demo/" + variant + ".json"};
      if (!recipe.empty()) files.push_back(root + recipe);
      files.push_back(root + demo);
      RunConfig cfg;
      EXPECT_NO_THROW(resolve_config(cfg, {files, {}})) << variant << " " << demo;
      EXPECT_FALSE(cfg.data.transform.augment) << demo;  // captions say left and right, crops move findings
    }
  }
}

TEST(Presets, StageRecipesCarryLavisHyperParameters) {
  const std::string dir = std::string(MSMEDCAP_SOURCE_DIR) + "/configs/stages/";
  RunConfig s1, s2, ft;
  resolve_config(s1, {{dir + "stage1-sam.json"}, {}});
  resolve_config(s2, {{dir + "stage2.json"}, {}});
  resolve_config(ft, {{dir + "caption.json"}, {}});
  EXPECT_EQ(s1.train.stage.name, "stage1_sam");
  EXPECT_TRUE(s1.model.sam_qformer.text_path);
  EXPECT_EQ(s1.train.optimizer.warmup_steps, 5000);
  EXPECT_EQ(s2.train.optimizer.warmup_steps, 2000);
  EXPECT_EQ(s2.train.eos_text, "\n");
  EXPECT_EQ(ft.train.prompt, "a photo of ");
  EXPECT_TRUE(ft.train.stage.train_vision);
  EXPECT_DOUBLE_EQ(ft.train.optimizer.lr, 1e-5);
}

TEST(Presets, SamSizesLayerOverTheDefaultModel) {
  RunConfig cfg;
  const std::string dir = std::string(MSMEDCAP_SOURCE_DIR) + "/configs/models/";
  resolve_config(cfg, {{dir + "msmedcap-opt2.7b.json", dir + "sam-vit-h.json"}, {}});
  EXPECT_EQ(cfg.model.sam.hidden_size, 1280);
  EXPECT_EQ(cfg.model.sam.global_attn_indexes.back(), 31);
  EXPECT_EQ(cfg.model.sam_qformer.encoder_hidden_size, 4096);
}

TEST(Presets, GenerationPresetsLayerAsTheGenerateSection) {
  for (const auto& file : files_in("generate")) {
    RunConfig cfg;
    resolve_config(cfg, {{file}, {}});
    const auto options = inference::GenerateOptions::from_config(cfg.generate);  // ids given: no tokenizer needed
    EXPECT_EQ(options.eos_token_id, 50118) << file;
    EXPECT_EQ(options.num_beams, cfg.generate.num_beams) << file;
  }
}

}  // namespace
}  // namespace msmedcap::config
