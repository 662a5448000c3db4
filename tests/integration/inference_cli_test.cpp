// Inference end to end on the synthetic data with tiny models trained here through the CLI:
// msmedcap caption (dataset split, folder with a broken image, CSV, attention maps, beam
// search) scored by msmedcap evaluate, and msmedcap retrieve.
#include <gtest/gtest.h>
#include <opencv2/imgcodecs.hpp>

#include <cmath>
#include <filesystem>
#include <map>
#include <set>
#include <sstream>

#include "msmedcap/config/config_io.h"
#include "msmedcap/config/generate_config.h"
#include "test_utils.h"

namespace msmedcap {
namespace {

namespace fs = std::filesystem;
using testing::read_jsonl;

/// A synthetic dataset (train and test splits, 64 px) and two runs trained on it: the caption
/// stage and stage 1 of the CLIP branch, 20 steps each, tiny model.
class InferenceCli : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new testing::TempDir();
    const std::string d = dir_->path();
    const std::string src = MSMEDCAP_SOURCE_DIR;
    auto r = testing::run_msmedcap("synth --out " + d + "/synth --n 40 --image-size 64");
    ASSERT_EQ(r.exit_code, 0) << r.err;
    config::Json cfg = {
        {"tokenizers",
         {{"qformer", testing::data_path("tokenizers/bert")}, {"decoder", testing::data_path("tokenizers/opt")}}},
        {"data",
         {{"sources", {{{"format", "jsonl"}, {"root", d + "/synth"}, {"annotations", "train.jsonl"}}}},
          {"transform", {{"clip_size", 32}, {"sam_size", 64}}}}},
        {"val_data", {{"sources", {{{"format", "jsonl"}, {"root", d + "/synth"}, {"annotations", "test.jsonl"}}}}}},
        {"loader", {{"batch_size", 8}, {"workers", 1}}},
        {"train",
         {{"max_steps", 20},
          {"log_every", 10},
          {"optimizer", {{"lr", 1e-3}, {"warmup_steps", 0}, {"schedule", "cosine"}}}}}};
    testing::write_text(d + "/cfg.json", cfg.dump());
    const std::string base = "train -c " + src + "/configs/models/tiny.json -c " + src + "/configs/stages/";
    r = testing::run_msmedcap(base + "caption.json -c " + d +
                              "/cfg.json --set train.stage.train_vision=false --run-dir " + d + "/caption");
    ASSERT_EQ(r.exit_code, 0) << r.err;
    r = testing::run_msmedcap(base + "stage1-clip.json -c " + d + "/cfg.json --run-dir " + d + "/stage1");
    ASSERT_EQ(r.exit_code, 0) << r.err;
  }
  static void TearDownTestSuite() {
    delete dir_;
    dir_ = nullptr;
  }
  static std::string path(const std::string& name) { return dir_->path() + "/" + name; }

  static testing::TempDir* dir_;
};
testing::TempDir* InferenceCli::dir_ = nullptr;

TEST_F(InferenceCli, CaptionsAndScoresTheTestSplit) {
  testing::TempDir out;
  auto r = testing::run_msmedcap("caption --run " + path("caption") + " --dataset val_data --out " +
                                 out.file("pred.jsonl") + " --references-out " + out.file("ref.jsonl"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE((r.out + r.err).find("captions/s"), std::string::npos) << r.out << r.err;
  const auto pred = read_jsonl(out.file("pred.jsonl"));
  const auto refs = read_jsonl(out.file("ref.jsonl"));
  ASSERT_EQ(pred.size(), refs.size());
  ASSERT_GT(pred.size(), 0u);
  for (size_t i = 0; i < pred.size(); ++i) {
    EXPECT_EQ(pred[i]["id"], refs[i]["id"]);
    ASSERT_TRUE(pred[i].contains("caption")) << pred[i].dump();
    // Greedy: the score is a sum of log-probabilities.
    const double score = pred[i]["score"].get<double>();
    EXPECT_TRUE(std::isfinite(score) && score <= 0) << score;
  }
  r = testing::run_msmedcap("evaluate --pred " + out.file("pred.jsonl") + " --ref " + out.file("ref.jsonl") +
                            " --json " + out.file("scores.json"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto scores = config::read_json_file(out.file("scores.json"));
  for (const char* k : {"Bleu_1", "Bleu_2", "Bleu_3", "Bleu_4", "METEOR", "ROUGE_L"}) {
    EXPECT_GE(scores[k].get<double>(), 0.0) << k;
    EXPECT_LE(scores[k].get<double>(), 1.0) << k;
  }
  EXPECT_GE(scores["CIDEr"].get<double>(), 0.0);
}

TEST_F(InferenceCli, BaselinesNearestAndZeroPrefixAndAttentionOnTheFinding) {
  testing::TempDir out;
  // Against itself, every image is its own nearest neighbour.
  auto r = testing::run_msmedcap("nearest --run " + path("caption") + " --train-dataset val_data --out " +
                                 out.file("nn.jsonl"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto nn = read_jsonl(out.file("nn.jsonl"));
  ASSERT_GT(nn.size(), 1u);
  for (const auto& line : nn) EXPECT_EQ(line["nearest"], line["id"]) << line.dump();
  // Zeros for every image's prefix: one caption for all.
  r = testing::run_msmedcap("caption --run " + path("caption") + " --dataset val_data --zero-prefix --out " +
                            out.file("zero.jsonl"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::set<std::string> zero;
  for (const auto& line : read_jsonl(out.file("zero.jsonl"))) zero.insert(line["caption"].get<std::string>());
  EXPECT_EQ(zero.size(), 1u);
  // Guidance against that zeroed prefix: at scale 0 every image gets the zeroed prefix's caption;
  // with --zero-prefix too, both prefixes would be zeros, which is refused.
  r = testing::run_msmedcap("caption --run " + path("caption") +
                            " --dataset val_data --set generate.guidance_scale=0 --out " + out.file("g0.jsonl"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  for (const auto& line : read_jsonl(out.file("g0.jsonl"))) EXPECT_EQ(line["caption"], *zero.begin()) << line.dump();
  r = testing::run_msmedcap("caption --run " + path("caption") +
                            " --dataset val_data --zero-prefix --set generate.guidance_scale=2 --out " +
                            out.file("g2.jsonl"));
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("--zero-prefix with generate.guidance_scale 2"), std::string::npos) << r.err;
  EXPECT_FALSE(std::filesystem::exists(out.file("g2.jsonl")));
  // Where the attention lands: measured for the studies with a finding, shares in [0, 1].
  r = testing::run_msmedcap("caption --run " + path("caption") + " --dataset val_data --attention-on-finding 10 " +
                            "--out " + out.file("att.jsonl"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::map<std::string, std::string> finding;
  for (const auto& line : read_jsonl(path("synth/test.jsonl"))) finding[line["id"]] = line["finding"];
  int64_t measured = 0;
  for (const auto& line : read_jsonl(out.file("att.jsonl"))) {
    const bool lesion = finding.at(line["id"]) != "normal";
    EXPECT_EQ(line.contains("attention_on_finding"), lesion) << line.dump();
    if (!lesion) continue;
    ++measured;
    for (const char* branch : {"clip", "sam"}) {
      const double share = line["attention_on_finding"][branch].get<double>();
      const double area = line["finding_area"][branch].get<double>();
      EXPECT_GE(share, 0.0);
      EXPECT_LE(share, 1.0);
      EXPECT_GT(area, 0.0);
      EXPECT_LT(area, 0.5);
    }
  }
  EXPECT_GT(measured, 0);
}

TEST_F(InferenceCli, BatchSizeDoesNotChangeCaptions) {
  testing::TempDir out;
  const std::string base = "caption --run " + path("caption") + " --dataset val_data --out ";
  ASSERT_EQ(testing::run_msmedcap(base + out.file("b1.jsonl") + " --batch-size 1").exit_code, 0);
  ASSERT_EQ(testing::run_msmedcap(base + out.file("b4.jsonl") + " --batch-size 4 --workers 3").exit_code, 0);
  const auto a = read_jsonl(out.file("b1.jsonl")), b = read_jsonl(out.file("b4.jsonl"));
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i]["caption"], b[i]["caption"]) << i;
    EXPECT_NEAR(a[i]["score"].get<double>(), b[i]["score"].get<double>(), 1e-3) << i;
  }
}

// Captioning with int8, w8a8 and bf16 decoder weights (CPU decoding formats): every study captioned,
// with scores of float32's size (the same model, its decoder weights rounded).
TEST_F(InferenceCli, CaptionsWithInt8AndBf16DecoderWeights) {
  testing::TempDir out;
  const std::string base = "caption --run " + path("caption") + " --dataset val_data --out ";
  ASSERT_EQ(testing::run_msmedcap(base + out.file("fp32.jsonl")).exit_code, 0);
  const auto ref = read_jsonl(out.file("fp32.jsonl"));
  for (const std::string dtype : {"int8", "w8a8", "bf16"}) {
    const auto r = testing::run_msmedcap(base + out.file(dtype + ".jsonl") + " --dtype " + dtype);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const auto got = read_jsonl(out.file(dtype + ".jsonl"));
    ASSERT_EQ(got.size(), ref.size());
    for (size_t i = 0; i < got.size(); ++i) {
      EXPECT_EQ(got[i]["id"], ref[i]["id"]);
      ASSERT_TRUE(got[i].contains("caption")) << got[i].dump();
      const double score = got[i]["score"].get<double>();
      EXPECT_TRUE(std::isfinite(score) && score <= 0) << dtype << " " << score;
      if (got[i]["caption"] == ref[i]["caption"]) {  // the same tokens: nearly the same log-probability
        EXPECT_NEAR(score, ref[i]["score"].get<double>(), 0.05 * std::abs(ref[i]["score"].get<double>()) + 0.05)
            << dtype << " " << i;
      }
    }
  }
}

TEST_F(InferenceCli, FolderWithABrokenImageGivesAnErrorRecordCsvAndAttentionMaps) {
  testing::TempDir out;
  const std::string images = out.file("images");
  fs::create_directories(images);
  int copied = 0;
  for (const auto& e : fs::directory_iterator(path("synth/images"))) {
    if (copied == 3) break;
    fs::copy_file(e.path(), images + "/" + e.path().filename().string());
    ++copied;
  }
  // Two images with one stem (a PNG's bytes under .jpg decode by their content): two ids, two
  // sets of attention maps.
  const auto first = fs::directory_iterator(path("synth/images"))->path();
  fs::copy_file(first, images + "/scan.png");
  fs::copy_file(first, images + "/scan.jpg");
  testing::write_text(images + "/broken.png", "not an image");
  testing::write_text(images + "/notes.txt", "ignored: not an image extension");
  const auto r = testing::run_msmedcap("caption --run " + path("caption") + " --images " + images + " --out " +
                                       out.file("c.csv") + " --attention-maps " + out.file("maps"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string csv = testing::read_text(out.file("c.csv"));
  EXPECT_EQ(testing::count_lines(csv), 7u) << csv;  // header + 5 captions + 1 error
  EXPECT_NE(csv.find("\nscan.png,"), std::string::npos) << csv;
  EXPECT_NE(csv.find("\nscan.jpg,"), std::string::npos) << csv;
  EXPECT_EQ(csv.rfind("id,image,caption,score,error\n", 0), 0u);
  EXPECT_NE(csv.find("broken.png,"), std::string::npos);
  EXPECT_NE(csv.find("broken.png: not a decodable image"), std::string::npos) << csv;
  for (const auto& e : fs::directory_iterator(images)) {
    const std::string id = e.path().filename().string();
    if (id == "broken.png" || id == "notes.txt") continue;
    for (const char* branch : {"clip", "sam"}) {
      const cv::Mat png = cv::imread(out.file("maps/" + id + "." + branch + ".png"), cv::IMREAD_COLOR);
      ASSERT_FALSE(png.empty()) << id << " " << branch;
      EXPECT_EQ(png.rows, 64);
      EXPECT_EQ(png.cols, 64);
    }
  }
  EXPECT_FALSE(fs::exists(out.file("maps/broken.png.clip.png")));
}

TEST_F(InferenceCli, BeamSearchAndListFile) {
  testing::TempDir out;
  // OPT's "\n" in the test tokenizer is id 14 (the presets' 50118 is the real OPT's).
  testing::write_text(out.file("beam.json"),
                      R"({"num_beams": 3, "max_new_tokens": 12, "eos_token_id": 14, "pad_token_id": 1})");
  std::string list;
  int n = 0;
  for (const auto& e : fs::directory_iterator(path("synth/images"))) {
    if (n++ == 4) break;
    list += "img" + std::to_string(n) + "\t" + e.path().string() + "\n";
  }
  testing::write_text(out.file("list.txt"), "# id<TAB>path\n" + list);
  const auto r = testing::run_msmedcap("caption --run " + path("caption") + " --list " + out.file("list.txt") +
                                       " --generate " + out.file("beam.json") + " --out " + out.file("beam.jsonl"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto records = read_jsonl(out.file("beam.jsonl"));
  ASSERT_EQ(records.size(), 4u);
  EXPECT_EQ(records[0]["id"], "img1");
  for (const auto& rec : records) EXPECT_TRUE(rec.contains("caption") && std::isfinite(rec["score"].get<double>()));
  // The presets' OPT end token is outside this tokenizer's vocabulary: refused, nothing written.
  const auto bad = testing::run_msmedcap("caption --run " + path("caption") + " --list " + out.file("list.txt") +
                                         " --generate " + std::string(MSMEDCAP_SOURCE_DIR) +
                                         "/configs/generate/msmedcap.json --out " + out.file("bad.jsonl"));
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_NE(bad.err.find("eos_token_id 50118 outside the decoder's vocabulary"), std::string::npos) << bad.err;
  EXPECT_FALSE(fs::exists(out.file("bad.jsonl")));
}

TEST_F(InferenceCli, GenerationIsAConfigSectionLayeredOverriddenAndSavedWithTheRun) {
  testing::TempDir out;
  std::string list;
  int n = 0;
  for (const auto& e : fs::directory_iterator(path("synth/images"))) {
    if (n++ == 4) break;
    list += "img" + std::to_string(n) + "\t" + e.path().string() + "\n";
  }
  testing::write_text(out.file("list.txt"), list);
  const std::string base = "caption --run " + path("caption") + " --list " + out.file("list.txt");
  // The same beam-3 settings as an HF-style file (--generate) and as a preset layered with -c.
  testing::write_text(out.file("hf.json"),
                      R"({"num_beams": 3, "max_new_tokens": 12, "eos_token_id": 14, "early_stopping": true})");
  testing::write_text(
      out.file("preset.json"),
      R"({"generate": {"num_beams": 3, "max_new_tokens": 12, "eos_token_id": 14, "pad_token_id": 1, "early_stopping": "true"}})");
  auto r = testing::run_msmedcap(base + " --generate " + out.file("hf.json") + " --out x.jsonl --dump-config");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto resolved = config::Json::parse(r.out);
  EXPECT_EQ(resolved["generate"]["num_beams"], 3);
  EXPECT_EQ(resolved["generate"]["early_stopping"], "true");
  EXPECT_EQ(resolved["generate"]["pad_token_id"], 1);  // HF's default for a file that leaves it out
  r = testing::run_msmedcap(base + " --generate " + out.file("hf.json") + " --out " + out.file("hf.jsonl"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  r = testing::run_msmedcap(base + " -c " + out.file("preset.json") + " --out " + out.file("preset.jsonl"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(testing::read_text(out.file("hf.jsonl")), testing::read_text(out.file("preset.jsonl")));
  // --set wins over --generate: one new token at most.
  r = testing::run_msmedcap(base + " --generate " + out.file("hf.json") + " --set generate.max_new_tokens=1 --out " +
                            out.file("one.jsonl"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto beam = read_jsonl(out.file("hf.jsonl")), one = read_jsonl(out.file("one.jsonl"));
  ASSERT_EQ(one.size(), 4u);
  bool shorter = false;
  for (size_t i = 0; i < one.size(); ++i) {
    EXPECT_LE(one[i]["caption"].get<std::string>().size(), beam[i]["caption"].get<std::string>().size());
    shorter |= one[i]["caption"].get<std::string>().size() < beam[i]["caption"].get<std::string>().size();
  }
  EXPECT_TRUE(shorter);
  // A bad value names its key and source; the run folder saved the section it trained with.
  r = testing::run_msmedcap(base + " --set generate.early_stopping=sometimes --out " + out.file("bad.jsonl"));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("generate.early_stopping: expected false, true or never, got 'sometimes'"), std::string::npos)
      << r.err;
  EXPECT_FALSE(fs::exists(out.file("bad.jsonl")));
  const auto saved = config::read_json_file(path("caption") + "/config.json");
  ASSERT_TRUE(saved.contains("generate")) << saved.dump();
  EXPECT_EQ(saved["generate"], config::to_json(config::GenerateConfig{}));
}

TEST_F(InferenceCli, BadInputsAreNamed) {
  testing::TempDir out;
  auto r = testing::run_msmedcap("caption --run " + path("caption") + " --images " + out.file("missing") + " --out " +
                                 out.file("x.jsonl"));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find(out.file("missing") + ": not a folder"), std::string::npos) << r.err;
  r = testing::run_msmedcap("caption --run " + out.file("norun") + " --images " + out.file("missing") + " --out " +
                            out.file("x.jsonl"));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("not a run folder"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(out.file("x.jsonl")));
}

TEST_F(InferenceCli, RetrievalRecallBothWays) {
  testing::TempDir out;
  for (const std::string rerank : {"0", "4"}) {
    const auto r = testing::run_msmedcap("retrieve --run " + path("stage1") + " --rerank " + rerank + " --json " +
                                         out.file("r.json"));
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const auto m = config::read_json_file(out.file("r.json"));
    ASSERT_LE(m["images"].get<int64_t>(), 10);  // so every image and text is within the top 10
    EXPECT_DOUBLE_EQ(m["txt_r10"].get<double>(), 100.0);
    EXPECT_DOUBLE_EQ(m["img_r10"].get<double>(), 100.0);
    for (const char* k : {"txt_r1", "txt_r5", "img_r1", "img_r5"}) {
      EXPECT_GE(m[k].get<double>(), 0.0);
      EXPECT_LE(m[k].get<double>(), 100.0);
    }
    EXPECT_LE(m["txt_r1"].get<double>(), m["txt_r5"].get<double>());
  }
  // In bf16 (runtime.dtype) too: with at most 10 images, every match is still within the top 10.
  const auto half =
      testing::run_msmedcap("retrieve --run " + path("stage1") + " --dtype bf16 --json " + out.file("bf16.json"));
  ASSERT_EQ(half.exit_code, 0) << half.err;
  EXPECT_DOUBLE_EQ(config::read_json_file(out.file("bf16.json"))["txt_r10"].get<double>(), 100.0);
  // int8 is a decoding format: retrieval does not decode, so it is refused by name.
  const auto int8 = testing::run_msmedcap("retrieve --run " + path("stage1") + " --dtype int8");
  EXPECT_EQ(int8.exit_code, 1);
  EXPECT_NE(int8.err.find("retrieve does not decode"), std::string::npos) << int8.err;
  // The caption run has no stage-1 heads.
  const auto r = testing::run_msmedcap("retrieve --run " + path("caption"));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("no stage-1 heads"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace msmedcap
