// Checkpoint folders: round trip, `latest`, pruning, crash leftovers and damaged files.
#include <gtest/gtest.h>

#include <filesystem>

#include <torch/torch.h>

#include "msmedcap/core/check.h"
#include "msmedcap/io/checkpoint.h"
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

}  // namespace
}  // namespace msmedcap
