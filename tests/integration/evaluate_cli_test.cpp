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

TEST(EvaluateCli, AttributesScoreOverallAndByGroupAndBaselinePerGroup) {
  testing::TempDir dir;
  const std::string rules = std::string(MSMEDCAP_SOURCE_DIR) + "/configs/attributes/synthetic.json";
  testing::write_text(
      dir.file("ref.jsonl"),
      "{\"id\": 1, \"caption\": \"Chest radiograph showing a small nodule in the left upper lobe.\", "
      "\"modality\": \"chest_xray\"}\n"
      "{\"id\": 2, \"caption\": \"Axial CT: a large right pleural effusion.\", \"modality\": \"axial_ct\"}\n"
      "{\"id\": 3, \"caption\": \"Brain MRI with no abnormality.\", \"modality\": \"brain_mri\"}\n");
  // The baseline per modality: each test study gets its modality's commonest training caption.
  testing::write_text(dir.file("train.jsonl"),
                      "{\"id\": 10, \"caption\": \"Chest X-ray: a large mass in the right lower zone.\", "
                      "\"modality\": \"chest_xray\"}\n"
                      "{\"id\": 11, \"caption\": \"Axial CT showing a small left pleural effusion.\", "
                      "\"modality\": \"axial_ct\"}\n"
                      "{\"id\": 12, \"caption\": \"Axial CT showing a small left pleural effusion.\", "
                      "\"modality\": \"axial_ct\"}\n");
  const auto b = testing::run_msmedcap("baseline --train " + dir.file("train.jsonl") + " --ref " +
                                       dir.file("ref.jsonl") + " --by modality --raw --out " + dir.file("pred.jsonl"));
  ASSERT_EQ(b.exit_code, 0) << b.err;
  const auto r = testing::run_msmedcap("evaluate --no-meteor --pred " + dir.file("pred.jsonl") + " --ref " +
                                       dir.file("ref.jsonl") + " --attributes " + rules + " --by modality --json " +
                                       dir.file("scores.json"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("finding_acc"), std::string::npos) << r.out;
  const auto s = config::read_json_file(dir.file("scores.json"));
  // Study 1 gets the chest caption, 2 the CT one, 3 (no MRI in training) the overall commonest,
  // the CT one.
  EXPECT_NEAR(s["modality_acc"].get<double>(), 2.0 / 3.0, 1e-12);
  EXPECT_NEAR(s["finding_acc"].get<double>(), 1.0 / 3.0, 1e-12);  // only the effusion
  EXPECT_NEAR(s["side_acc"].get<double>(), 0.0, 1e-12);
  EXPECT_NEAR(s["zone_acc"].get<double>(), 1.0 / 3.0, 1e-12);  // the effusion's implied lower zone
  EXPECT_NEAR(s["groups"]["modality"]["axial_ct"]["finding_acc"].get<double>(), 1.0, 1e-12);
  EXPECT_NEAR(s["groups"]["modality"]["brain_mri"]["finding_acc"].get<double>(), 0.0, 1e-12);
  EXPECT_EQ(s["groups"]["modality"]["brain_mri"]["n"].get<int64_t>(), 1);
  // Paired: the baseline against the references themselves, on the CT and MRI studies.
  testing::write_text(dir.file("ref-as-pred.jsonl"),
                      "{\"id\": 1, \"caption\": \"Chest radiograph showing a small nodule in the left upper lobe.\"}\n"
                      "{\"id\": 2, \"caption\": \"Axial CT: a large right pleural effusion.\"}\n"
                      "{\"id\": 3, \"caption\": \"Brain MRI with no abnormality.\"}\n");
  const auto c = testing::run_msmedcap("compare --a " + dir.file("pred.jsonl") + " --b " +
                                       dir.file("ref-as-pred.jsonl") + " --ref " + dir.file("ref.jsonl") +
                                       " --attributes " + rules + " --attribute side --json " + dir.file("cmp.json"));
  ASSERT_EQ(c.exit_code, 0) << c.err;
  const auto cmp = config::read_json_file(dir.file("cmp.json"));
  EXPECT_NEAR(cmp["a"].get<double>(), 0.0, 1e-12);
  EXPECT_NEAR(cmp["b"].get<double>(), 1.0, 1e-12);
  EXPECT_NEAR(cmp["difference"].get<double>(), 1.0, 1e-12);
  EXPECT_EQ(cmp["n"].get<int64_t>(), 3);
  const auto where = testing::run_msmedcap("compare --a " + dir.file("pred.jsonl") + " --b " + dir.file("pred.jsonl") +
                                           " --ref " + dir.file("ref.jsonl") + " --attributes " + rules +
                                           " --attribute finding --where modality=ultrasound");
  EXPECT_EQ(where.exit_code, 1);
  EXPECT_NE(where.err.find("has modality=ultrasound"), std::string::npos) << where.err;
  const auto bad = testing::run_msmedcap("evaluate --no-meteor --pred " + dir.file("pred.jsonl") + " --ref " +
                                         dir.file("ref.jsonl") + " --attributes " + dir.file("ref.jsonl"));
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_NE(bad.err.find("ref.jsonl"), std::string::npos) << bad.err;
}

}  // namespace
}  // namespace msmedcap
