// Security properties of the binary at run time. The parsers' own refusals (tensor ranges beyond
// the file, overlapping ranges, oversized headers; dataset paths leaving their root) are unit
// tests (safetensors_test.cpp, datasets_test.cpp) and fuzz targets (tests/fuzz).
#include <gtest/gtest.h>

#include <filesystem>

#include "test_utils.h"
#include "train_helpers.h"

namespace msmedcap {
namespace {

/// `args` run with every Internet socket refused and recorded (tests/tools/no_network.cpp).
testing::RunResult without_network(const std::string& args, const std::string& log, const std::string& env = "") {
  return testing::run_command("env MSMEDCAP_NO_NETWORK_LOG=" + log + " LD_PRELOAD=" + MSMEDCAP_NO_NETWORK_SHIM + " " +
                              env + " " + MSMEDCAP_BINARY + " " + args);
}

TEST(Security, TrainingAndCaptioningOpenNoNetworkSocket) {
  testing::TempDir dir;
  auto cfg = tiny_run(make_synth(dir.file("synth"), 12), "caption");
  cfg.train.max_steps = 2;
  const std::string log = dir.file("sockets.log");
  const auto cfg_path = write_config(dir, "run.json", cfg);
  const auto train = without_network("train -c " + cfg_path + " --run-dir " + dir.file("run"), log);
  ASSERT_EQ(train.exit_code, 0) << train.err;
  const auto caption = without_network("caption --run " + dir.file("run") + " --images " + dir.file("synth/images") +
                                           " --out " + dir.file("captions.jsonl"),
                                       log);
  ASSERT_EQ(caption.exit_code, 0) << caption.err;
  EXPECT_EQ(testing::count_lines(testing::read_text(dir.file("captions.jsonl"))), 12u);
  EXPECT_FALSE(std::filesystem::exists(log)) << testing::read_text(log);

  // The shim does see sockets: a two-process run's rendezvous (c10d's TCPStore) is one, refused.
  const auto rendezvous =
      without_network("--log-level error train -c " + cfg_path + " --run-dir " + dir.file("pair"), log,
                      "WORLD_SIZE=2 RANK=0 LOCAL_RANK=0 MASTER_ADDR=127.0.0.1 MASTER_PORT=29731");
  EXPECT_NE(rendezvous.exit_code, 0);
  EXPECT_NE(testing::read_text(log).find("socket(AF_INET"), std::string::npos) << rendezvous.err;
}

}  // namespace
}  // namespace msmedcap
