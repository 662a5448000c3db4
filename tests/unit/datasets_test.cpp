// Dataset readers on small fixtures written from the documented layouts
// (tests/data/datasets), malformed input, and the dataset-root guard.
#include <gtest/gtest.h>

#include "msmedcap/core/check.h"
#include "msmedcap/data/datasets.h"
#include "test_utils.h"

namespace msmedcap::data {
namespace {

using msmedcap::testing::data_path;
using msmedcap::testing::TempDir;
using msmedcap::testing::write_text;

config::DatasetSourceConfig source(const std::string& format, const std::string& root, const std::string& split = "",
                                   const std::string& annotations = "") {
  config::DatasetSourceConfig s;
  s.format = format;
  s.root = root;
  s.split = split;
  s.annotations = annotations;
  return s;
}

std::string error_of(const config::DatasetSourceConfig& s) {
  try {
    read_dataset(s);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(Datasets, RocoCaptionsTxt) {
  const std::string root = data_path("datasets/roco");
  ReadReport report;
  const auto samples = read_dataset(source("roco", root, "test"), &report);
  ASSERT_EQ(samples.size(), 2u);
  EXPECT_EQ(samples[0].id, "ROCO_00001");
  EXPECT_EQ(samples[0].captions[0], "Axial MRI (coronal view).");  // the space after the TAB is gone
  EXPECT_EQ(samples[0].image, root + "/data/test/radiology/images/ROCO_00001.jpg");
  EXPECT_EQ(report.read, 2);
  EXPECT_EQ(report.skipped, 1);  // ROCO_00009 has an empty caption
  EXPECT_NE(report.problems[0].find("captions.txt:4: empty caption"), std::string::npos) << report.problems[0];
}

TEST(Datasets, RocoV2QuotedCsvWithNewlines) {
  const std::string root = data_path("datasets/rocov2");
  const auto samples = read_dataset(source("rocov2", root, "test"));
  ASSERT_EQ(samples.size(), 3u);
  EXPECT_EQ(samples[1].captions[0], "Chest X-ray, PA view: “normal” heart size, no effusion.");
  EXPECT_EQ(samples[2].captions[0], "Follow-up MRI \"T2-weighted\" image\nwith a second line.");
  EXPECT_EQ(samples[2].image, root + "/test/ROCOv2_2023_test_000003.jpg");
}

TEST(Datasets, MedicatStripsLabelsAndSplitsByPaper) {
  const std::string root = data_path("datasets/medicat");
  const auto all = read_dataset(source("medicat", root));
  ASSERT_EQ(all.size(), 3u);
  EXPECT_EQ(all[0].captions[0], "Axial CT showing a mass in the left kidney.");
  EXPECT_EQ(all[1].captions[0], "Chest radiograph with bilateral effusion.");
  EXPECT_EQ(all[2].captions[0], "Brain MRI, T2-weighted.");
  EXPECT_EQ(all[0].image, root + "/figures/57c9ad0f1b8fa4c1e2d3c4b5a6978812aa3bc001_2-Figure1-1.png");
  // Both figures of one paper land in the same split, and filtering by split keeps that.
  EXPECT_EQ(all[0].attributes.at("split"), all[1].attributes.at("split"));
  size_t total = 0;
  for (const char* split : {"train", "val", "test"}) total += read_dataset(source("medicat", root, split)).size();
  EXPECT_EQ(total, 3u);
  // The split is a fixed function of the hash (stable across runs and machines).
  EXPECT_EQ(medicat_split("57c9ad0f1b8fa4c1e2d3c4b5a6978812aa3bc001"), all[0].attributes.at("split"));
  int train = 0;
  for (int i = 0; i < 1000; ++i) train += medicat_split("paper" + std::to_string(i)) == "train";
  EXPECT_NEAR(train, 800, 60);
}

TEST(Datasets, R2GenAnnotationJson) {
  const std::string root = data_path("datasets/r2gen");
  ReadReport report;
  const auto test = read_dataset(source("r2gen", root, "test"), &report);
  ASSERT_EQ(test.size(), 1u);
  EXPECT_EQ(report.skipped, 1);  // empty report
  EXPECT_EQ(test[0].image, root + "/images/CXR1_1_IM-0001/0.png");
  const auto train = read_dataset(source("r2gen", root, "train"));
  EXPECT_EQ(train[0].attributes.at("views"), "2");
  EXPECT_NE(error_of(source("r2gen", root, "validation")).find("no \"validation\" list"), std::string::npos);
}

TEST(Datasets, FuzzFoundNumberOutOfRangeIsAMalformedLine) {
  // libFuzzer (tests/fuzz/fuzz_datasets.cpp) found a JSONL line "1e22722" escaping as an
  // nlohmann out_of_range exception (tests/data/fuzz/datasets/crash-number-out-of-range: the
  // first byte picks the reader). It is a malformed line, named by file and line.
  TempDir dir;
  const std::string crash = testing::read_text(testing::data_path("fuzz/datasets/crash-number-out-of-range"));
  write_text(dir.file("a.jsonl"), crash.substr(1) + "\n");
  EXPECT_NE(error_of(source("jsonl", dir.path(), "", "a.jsonl")).find("a.jsonl:1"), std::string::npos);
  write_text(dir.file("b.json"), "[{\"image\": \"x.png\", \"caption\": \"c\", \"n\": 1e400}]");
  EXPECT_NE(error_of(source("lavis", dir.path(), "", "b.json")).find("b.json: invalid JSON"), std::string::npos);
}

TEST(Datasets, GenericJsonlCsvAndLavis) {
  const std::string root = data_path("datasets/generic");
  ReadReport report;
  const auto jsonl = read_dataset(source("jsonl", root, "", "captions.jsonl"), &report);
  ASSERT_EQ(jsonl.size(), 2u);
  EXPECT_EQ(jsonl[0].attributes.at("finding"), "nodule");
  EXPECT_EQ(jsonl[1].captions.size(), 2u);
  EXPECT_EQ(report.skipped, 1);
  const auto csv = read_dataset(source("csv", root, "", "captions.csv"));
  ASSERT_EQ(csv.size(), 2u);
  EXPECT_EQ(csv[0].captions[0], "Chest radiograph, left lower lobe effusion.");
  EXPECT_EQ(csv[1].attributes.at("modality"), "mri");
  const auto lavis = read_dataset(source("lavis", root, "", "lavis.json"));
  ASSERT_EQ(lavis.size(), 2u);
  EXPECT_EQ(lavis[0].id, "17");
  EXPECT_EQ(lavis[1].captions[1], "second reference");
}

TEST(Datasets, MalformedRowsNameFileAndLineOrAreSkipped) {
  TempDir dir;
  write_text(dir.file("bad.jsonl"),
             "{\"image\": \"a.png\", \"caption\": \"ok\"}\n{not json\n{\"image\": 3, \"caption\": \"x\"}\n");
  auto s = source("jsonl", dir.path(), "", "bad.jsonl");
  const std::string e = error_of(s);
  EXPECT_NE(e.find(dir.file("bad.jsonl") + ":2: invalid JSON"), std::string::npos) << e;
  s.skip_malformed = true;
  ReadReport report;
  EXPECT_EQ(read_dataset(s, &report).size(), 1u);
  EXPECT_EQ(report.skipped, 2);
  EXPECT_NE(report.problems[1].find(":3: \"image\" must be a string"), std::string::npos) << report.problems[1];

  write_text(dir.file("bad.csv"), "id,image,caption\n1,a.png,fine\n2,b.png\n3,\"c.png,open quote\n");
  const std::string csv = error_of(source("csv", dir.path(), "", "bad.csv"));
  EXPECT_NE(csv.find(dir.file("bad.csv") + ":4: unterminated quoted field"), std::string::npos) << csv;
  write_text(dir.file("short.csv"), "id,image,caption\n1,a.png,fine\n2,b.png\n");
  EXPECT_NE(error_of(source("csv", dir.path(), "", "short.csv")).find(":3: 2 fields, header has 3"), std::string::npos);
  write_text(dir.file("noheader.csv"), "file,text\nx,y\n");
  EXPECT_NE(error_of(source("csv", dir.path(), "", "noheader.csv")).find(":1: header needs 'image' and 'caption'"),
            std::string::npos);
  EXPECT_NE(error_of(source("jsonl", dir.path(), "", "missing.jsonl")).find("missing.jsonl: no such file"),
            std::string::npos);
}

TEST(Datasets, PathsNeverLeaveTheRoot) {
  TempDir dir;
  write_text(dir.file("a.jsonl"),
             "{\"image\": \"../../etc/passwd\", \"caption\": \"x\"}\n{\"image\": \"/etc/passwd\", \"caption\": \"y\"}\n"
             "{\"image\": \"sub/../ok.png\", \"caption\": \"z\"}\n");
  auto s = source("jsonl", dir.path(), "", "a.jsonl");
  const std::string e = error_of(s);
  EXPECT_NE(e.find(":1: image path '../../etc/passwd' leaves the dataset root"), std::string::npos) << e;
  EXPECT_THROW(resolve_image_path(dir.path(), "/etc/passwd", false, "x"), Error);
  EXPECT_EQ(resolve_image_path(dir.path(), "sub/../ok.png", false, "x"), dir.path() + "/sub/../ok.png");
  s.allow_outside_root = true;
  EXPECT_EQ(read_dataset(s).size(), 3u);
}

TEST(Datasets, CsvParserFollowsRfc4180) {
  const auto rows = parse_csv("a,\"b,c\",\"d \"\"e\"\"\"\r\n,,\n\"multi\nline\",x", "t.csv");
  ASSERT_EQ(rows.size(), 3u);
  EXPECT_EQ(rows[0], (std::vector<std::string>{"a", "b,c", "d \"e\""}));
  EXPECT_EQ(rows[1], (std::vector<std::string>{"", "", ""}));
  EXPECT_EQ(rows[2], (std::vector<std::string>{"multi\nline", "x"}));
}

TEST(Datasets, SourceValidation) {
  EXPECT_NE(error_of(source("coco", "/x")).find(".format: expected jsonl"), std::string::npos);
  EXPECT_NE(error_of(source("roco", "/x")).find(".split: the roco layout needs a split"), std::string::npos);
  EXPECT_NE(error_of(source("csv", "/x")).find(".annotations: the csv layout needs"), std::string::npos);
}

}  // namespace
}  // namespace msmedcap::data
