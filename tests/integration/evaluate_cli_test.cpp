// msmedcap evaluate end to end: the table, the JSON and per-item files, and its errors.
#include <gtest/gtest.h>

#include <filesystem>

#include "msmedcap/config/config_io.h"
#include "test_utils.h"

namespace msmedcap {
namespace {

TEST(EvaluateCli, IdenticalCaptionsScorePerfectlyAndFilesAreWritten) {
  MSMEDCAP_SKIP_WITHOUT(kStemmer);  // METEOR stems
  testing::TempDir dir;
  testing::write_text(dir.file("pred.jsonl"),
                      "{\"id\": 1, \"caption\": \"A small nodule in the left upper lobe.\"}\n"
                      "{\"id\": \"x2\", \"caption\": \"Large effusion on the right side\"}\n"
                      "{\"id\": 3, \"caption\": \"No acute finding in the chest\"}\n");
  testing::write_text(dir.file("ref.jsonl"),
                      "{\"id\": 1, \"captions\": [\"a small nodule in the left upper lobe\"]}\n"
                      "{\"id\": \"x2\", \"caption\": \"large effusion on the right side.\"}\n"
                      "{\"id\": 3, \"caption\": \"no acute finding in the chest\"}\n");
  const auto r = testing::run_msmedcap("evaluate --pred " + dir.file("pred.jsonl") + " --ref " + dir.file("ref.jsonl") +
                                       " --json " + dir.file("scores.json") + " --per-item " + dir.file("items.jsonl"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("CIDEr"), std::string::npos);
  const auto scores = config::read_json_file(dir.file("scores.json"));
  for (const char* k : {"Bleu_1", "Bleu_2", "Bleu_3", "Bleu_4", "METEOR", "ROUGE_L"})
    EXPECT_NEAR(scores[k].get<double>(), 1.0, 1e-8) << k;
  EXPECT_NEAR(scores["CIDEr"].get<double>(), 10.0, 1e-9);
  EXPECT_NE(r.err.find("METEOR modules: exact stem synonym"), std::string::npos) << r.err;
  EXPECT_EQ(testing::count_lines(testing::read_text(dir.file("items.jsonl"))), 3u);
}

TEST(EvaluateCli, MismatchedIdsAndMalformedLinesAreNamed) {
  MSMEDCAP_SKIP_WITHOUT(kStemmer);  // METEOR stems
  testing::TempDir dir;
  testing::write_text(dir.file("pred.jsonl"), "{\"id\": 1, \"caption\": \"a\"}\n{\"id\": 7, \"caption\": \"b\"}\n");
  testing::write_text(dir.file("ref.jsonl"), "{\"id\": 1, \"caption\": \"a\"}\n");
  const auto r = testing::run_msmedcap("evaluate --pred " + dir.file("pred.jsonl") + " --ref " + dir.file("ref.jsonl") +
                                       " --json " + dir.file("scores.json"));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("have no reference: 7"), std::string::npos) << r.err;
  EXPECT_FALSE(std::filesystem::exists(dir.file("scores.json")));
  testing::write_text(dir.file("bad.jsonl"), "{\"id\": 1, \"caption\": \"a\"}\n{\"id\": 2, \"caption\": \n");
  const auto bad =
      testing::run_msmedcap("evaluate --pred " + dir.file("bad.jsonl") + " --ref " + dir.file("ref.jsonl"));
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_NE(bad.err.find("bad.jsonl:2: not a JSON object"), std::string::npos) << bad.err;
}

}  // namespace
}  // namespace msmedcap
