// scripts/bench.sh --short (what CI runs): every benchmark row runs on the tiny model and lands in
// the record and the table with its figures; FLOP counts are the analytic ones. The harness is
// checked, not the speed. And `bench table` rejects a malformed record by its line.
#include <gtest/gtest.h>

#include <sstream>

#include <nlohmann/json.hpp>

#include "test_utils.h"

namespace msmedcap {
namespace {

TEST(Bench, ShortScriptRecordsEveryRowAndPrintsTheTable) {
  testing::TempDir dir;
  const std::string record = dir.file("bench.jsonl");
  const auto r = testing::run_command(std::string("MSMEDCAP_BIN=") + MSMEDCAP_BINARY + " " + MSMEDCAP_SOURCE_DIR +
                                      "/scripts/bench.sh --short --out " + record);
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  std::istringstream lines(testing::read_text(record));
  std::map<std::string, int> rows;
  for (std::string line; std::getline(lines, line);) {
    const auto j = nlohmann::json::parse(line);
    const std::string bench = j["bench"];
    ++rows[bench];
    if (bench == "matmul") {
      EXPECT_GT(j["gflops"].get<double>(), 0.0);
      continue;
    }
    if (bench == "membw" || bench == "linear") {
      EXPECT_GT(j["gbs"].get<double>(), 0.0) << line;
      continue;
    }
    EXPECT_GT(j["images_per_s"].get<double>(), 0.0) << line;
    if (bench == "loader") continue;
    EXPECT_GT(j["gflop"].get<double>(), 0.0) << line;
    EXPECT_GT(j["peak_rss_mb"].get<double>(), 0.0) << line;
    if (bench == "generate") {
      EXPECT_GT(j["tokens_per_s"].get<double>(), 0.0) << line;
      EXPECT_GT(j["weight_gbs"].get<double>(), 0.0) << line;
    }
  }
  EXPECT_EQ(rows["matmul"], 1);
  EXPECT_EQ(rows["membw"], 1);
  EXPECT_EQ(rows["linear"], 5);                                                   // packed fp32, bf16, int8, w8a8; ATen
  EXPECT_EQ(rows["loader"], core::built_with(core::Component::kOpenCv) ? 1 : 0);  // it decodes JPEGs
  EXPECT_EQ(rows["train-step"], 5);  // stage 1 CLIP, SAM cached, SAM live vs cached, stage 2
  // Greedy and beam 5, two batch sizes; then greedy and beam 3 at two batch sizes in each CPU
  // decoder weight format (ATen, fp32, bf16, int8, w8a8).
  EXPECT_EQ(rows["generate"], 4 + 20);
  // The table: a header, a rule and one row per record.
  EXPECT_NE(r.out.find("| benchmark | setting |"), std::string::npos);
  EXPECT_NE(r.out.find("| generate | beam 5, batch 2, 4 tokens"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("| train-step | stage1_sam (sam live, batch 2) |"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("| generate | beam 3, batch 1, 4 tokens (clip cached, sam cached, int8) |"), std::string::npos)
      << r.out;
}

TEST(Bench, TableNamesAMalformedRecordLine) {
  testing::TempDir dir;
  const std::string record = dir.file("bad.jsonl");
  testing::write_text(record, "{\"bench\": \"matmul\", \"setting\": \"x\", \"gflops\": 1}\n{\"bench\": \n");
  const auto r = testing::run_msmedcap("bench table " + record);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find(record + ":2: not a JSON line"), std::string::npos) << r.err;
}

TEST(Bench, TrainStepStoresFrozenPartsAndRunsBf16AsTheTrainerDoes) {
  const std::string step = std::string("bench train-step -c ") + MSMEDCAP_SOURCE_DIR +
                           "/configs/models/tiny.json --set train.stage.name=stage2 --batch 2 --text 8 --steps 1 "
                           "--warmup 0 --clip-input live --sam-input live ";
  // train.frozen_dtype is read (fp16 is refused on the CPU, as train refuses it) ...
  const auto half = testing::run_msmedcap(step + "--set train.frozen_dtype=fp16");
  EXPECT_EQ(half.exit_code, 1);
  EXPECT_NE(half.err.find("train.frozen_dtype: fp16 needs a CUDA device"), std::string::npos) << half.err;
  // ... and a bf16 step with bf16 frozen parts runs on the CPU.
  const auto bf16 = testing::run_msmedcap(step + "--set train.precision=bf16 --set train.frozen_dtype=bf16");
  EXPECT_EQ(bf16.exit_code, 0) << bf16.err;
  EXPECT_NE(bf16.out.find("train-step stage2 (clip live, sam live, batch 2"), std::string::npos) << bf16.out;
}

}  // namespace
}  // namespace msmedcap
