// Every input the fuzzers found crashing (tests/data/fuzz/<target>/) is replayed through the same
// target body libFuzzer runs (tests/fuzz/targets.cpp): each must now end normally or in a named
// error. Under MSMEDCAP_SANITIZE the replay runs with the sanitizers too.
#include <gtest/gtest.h>

#include <filesystem>
#include <string>

#include "fuzz/targets.h"
#include "test_utils.h"

namespace msmedcap {
namespace {

namespace fs = std::filesystem;

TEST(FuzzRegressions, EveryKeptCrashInputNowPasses) {
  const fs::path root = testing::data_path("fuzz");
  int replayed = 0;
  for (const auto& dir : fs::directory_iterator(root)) {
    ASSERT_TRUE(dir.is_directory()) << dir.path();
    // The SentencePiece target needs the bridge; its inputs replay in the builds that have it.
    if (dir.path().filename() == "sentencepiece" && !core::built_with(core::Component::kSentencePiece)) continue;
    const fuzz::Target target = fuzz::target(dir.path().filename().string());  // a folder per target
    for (const auto& file : fs::directory_iterator(dir.path())) {
      const std::string bytes = testing::read_text(file.path().string());
      EXPECT_NO_THROW(target(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size())) << file.path();
      ++replayed;
    }
  }
  EXPECT_GE(replayed, 2);  // the two crashes of the first campaign, at least
}

TEST(FuzzRegressions, TargetsAcceptTheirNamesOnly) {
  EXPECT_EQ(fuzz::target_names().size(), 8u);
  for (const auto& name : fuzz::target_names()) EXPECT_NE(fuzz::target(name), nullptr) << name;
  EXPECT_THROW(fuzz::target("pickle"), std::invalid_argument);
}

TEST(FuzzRegressions, SentencePieceTargetTrainsEncodesAndRefusesGarbageModels) {
  // The target's two halves once each, here with LibTorch loaded (the bridge opens with
  // RTLD_DEEPBIND): text through the model it trains, and bytes that are no model file.
  MSMEDCAP_SKIP_WITHOUT(kSentencePiece);
  const fuzz::Target target = fuzz::target("sentencepiece");
  for (const std::string input : {std::string("\x00no pleural effusion", 20), std::string("\x01not a model", 12)})
    EXPECT_NO_THROW(target(reinterpret_cast<const uint8_t*>(input.data()), input.size()));
}

}  // namespace
}  // namespace msmedcap
