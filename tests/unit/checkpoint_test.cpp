// Checkpoint folders: round trip, `latest`, pruning, crash leftovers and damaged files.
#include <gtest/gtest.h>

#include <filesystem>

#include <torch/torch.h>

#include "msmedcap/config/config_io.h"
#include "msmedcap/config/run_config.h"
#include "msmedcap/core/check.h"
#include "msmedcap/io/checkpoint.h"
#include "msmedcap/io/run_folder.h"
#include "test_utils.h"

namespace msmedcap {
namespace {

io::Checkpoint sample(int64_t step) {
  io::Checkpoint c;
  c.model["qformer.layer.weight"] = torch::full({2, 3}, static_cast<float>(step));
  c.optimizer["step.qformer.layer.weight"] = torch::full({1}, step, torch::kLong);
  c.state = {{"step", step}, {"loader", {{"epoch", 0}, {"batch", step}}}};
  c.config = {{"train", {{"lr", 1e-4}}}};
  return c;
}

TEST(Checkpoint, RoundTripLatestAndPrune) {
  testing::TempDir run;
  EXPECT_EQ(io::latest_checkpoint(run.path()), "");
  for (int64_t step : {10, 20, 30, 40}) io::save_checkpoint(run.path(), step, sample(step));
  const std::string latest = io::latest_checkpoint(run.path());
  EXPECT_NE(latest.find("step-000000040"), std::string::npos);
  const auto c = io::load_checkpoint(latest);
  EXPECT_TRUE(torch::equal(c.model.at("qformer.layer.weight"), torch::full({2, 3}, 40.0f)));
  EXPECT_EQ(c.state["loader"]["batch"], 40);
  EXPECT_EQ(c.config["train"]["lr"], 1e-4);
  // A crash during a save leaves a hidden temporary folder: ignored by latest, removed by prune.
  std::filesystem::create_directories(run.file("checkpoints/.step-000000050.tmp-1"));
  EXPECT_EQ(io::latest_checkpoint(run.path()), latest);
  const auto best = run.file("checkpoints/step-000000010");
  const auto removed = io::prune_checkpoints(run.path(), 2, {best});
  EXPECT_EQ(removed.size(), 2u);  // step 20 and the leftover
  EXPECT_TRUE(std::filesystem::exists(best));
  EXPECT_FALSE(std::filesystem::exists(run.file("checkpoints/step-000000020")));
  EXPECT_TRUE(std::filesystem::exists(run.file("checkpoints/step-000000030")));
  // Pruning renames a folder away before removing it: nothing but whole step folders and
  // `latest` is left (a kill mid-removal left a step folder without some of its files).
  for (const auto& e : std::filesystem::directory_iterator(run.file("checkpoints"))) {
    const std::string name = e.path().filename().string();
    EXPECT_TRUE(name == "latest" || name.rfind("step-", 0) == 0) << name;
  }
  // Saving the same step again replaces it whole.
  io::save_checkpoint(run.path(), 40, sample(41));
  EXPECT_EQ(io::load_checkpoint(latest).state["step"], 41);
}

TEST(Checkpoint, DamagedFilesAreNamed) {
  testing::TempDir run;
  const std::string dir = io::save_checkpoint(run.path(), 1, sample(1));
  const std::string model = dir + "/model.safetensors";
  const std::string bytes = testing::read_text(model);
  testing::write_text(model, bytes.substr(0, bytes.size() - 5));
  try {
    io::load_checkpoint(dir);
    FAIL() << "a truncated checkpoint must be refused";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("model.safetensors"), std::string::npos) << e.what();
  }
  testing::write_text(dir + "/state.json", "{\"step\": ");
  testing::write_text(model, bytes);
  try {
    io::load_checkpoint(dir);
    FAIL() << "malformed state.json must be refused";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("state.json"), std::string::npos) << e.what();
  }
  std::filesystem::remove(dir + "/config.json");
  EXPECT_THROW(io::latest_checkpoint(run.path()), Error);
  testing::write_text(run.file("checkpoints/latest"), "../../etc\n");
  EXPECT_THROW(io::latest_checkpoint(run.path()), Error);
}

TEST(RunFolder, StartRewindAndLayering) {
  testing::TempDir root;
  const io::RunFolder run(root.file("run"));
  const config::Json resolved = {{"train", {{"epochs", 1}}}};
  // A folder without config.json is not a run folder; the error names the flag that needs one.
  std::vector<std::string> files{"a.json"};
  EXPECT_NE(testing::error_of([&] { run.layer_saved_config(files, "--resume"); })
                .find("not a run folder (no config.json), "
                      "which --resume needs"),
            std::string::npos);
  run.start(resolved);
  EXPECT_EQ(config::read_json_file(run.config_file()), resolved);
  EXPECT_EQ(testing::read_text(run.metrics_file()), "");
  run.layer_saved_config(files, "--run");
  EXPECT_EQ(files, (std::vector<std::string>{run.config_file(), "a.json"}));  // under the -c files
  for (int64_t step : {1, 2, 3}) run.append_metrics({{"step", step}, {"loss", 1.0 / static_cast<double>(step)}});
  EXPECT_FALSE(run.has_checkpoint());
  io::save_checkpoint(run.path(), 2, sample(2));
  EXPECT_EQ(run.latest_checkpoint(), run.checkpoint(2));
  // A second start on a run with checkpoints is refused; a rewind to step 2 drops step 3's line.
  EXPECT_NE(testing::error_of([&] { run.start(resolved); }).find("already holds a run with checkpoints"),
            std::string::npos);
  run.rewind(2, {{"train", {{"epochs", 2}}}});
  EXPECT_EQ(testing::read_text(run.metrics_file()), "{\"step\":1,\"loss\":1.0}\n{\"step\":2,\"loss\":0.5}\n");
  EXPECT_EQ(config::read_json_file(run.config_file())["train"]["epochs"], 2);
  // --run after a run that started from random values: its missing parts come from the seed.
  config::RunConfig cfg;
  run.load_after_weights(cfg);
  ASSERT_EQ(cfg.weights.size(), 1u);
  EXPECT_EQ(cfg.weights[0].path, run.path());
  EXPECT_EQ(cfg.load.allow_missing, std::vector<std::string>{""});
  config::RunConfig with_weights;
  with_weights.weights.push_back(config::WeightsSource{});
  run.load_after_weights(with_weights);
  EXPECT_EQ(with_weights.weights.size(), 2u);
  EXPECT_TRUE(with_weights.load.allow_missing.empty());
  EXPECT_THROW(io::RunFolder(""), Error);
}

}  // namespace
}  // namespace msmedcap
