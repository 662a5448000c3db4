// The synthetic benchmark: determinism, held-out test combinations, captions that name what the
// image shows, and small findings that nearly vanish at the CLIP branch's 224 px.
#include <gtest/gtest.h>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "msmedcap/data/datasets.h"
#include "msmedcap/data/synthetic.h"
#include "test_utils.h"

#include <filesystem>
#include <set>

namespace msmedcap::data {
namespace {

using msmedcap::testing::read_text;
using msmedcap::testing::TempDir;

std::vector<Sample> split_of(const std::string& dir, const std::string& name) {
  config::DatasetSourceConfig s;
  s.format = "jsonl";
  s.root = dir;
  s.annotations = name + ".jsonl";
  return read_dataset(s);
}

TEST(Synthetic, SameSeedSameFilesOtherSeedOtherFiles) {
  TempDir a, b, c;
  SynthOptions o;
  o.n = 40;
  o.image_size = 128;
  o.seed = 5;
  const auto counts = write_synthetic_dataset(a.path(), o);
  write_synthetic_dataset(b.path(), o);
  ASSERT_EQ(counts.size(), 4u);
  EXPECT_EQ(counts[0] + counts[1] + counts[2] + counts[3], 40);
  for (const char* f : {"train.jsonl", "val.jsonl", "test.jsonl", "test_seen.jsonl", "images/synth_00007.png"}) {
    EXPECT_EQ(read_text(a.file(f)), read_text(b.file(f))) << f;
  }
  o.seed = 6;
  write_synthetic_dataset(c.path(), o);
  EXPECT_NE(read_text(a.file("train.jsonl")), read_text(c.file("train.jsonl")));
}

TEST(Synthetic, TestCombinationsAreUnseenInTraining) {
  TempDir dir;
  SynthOptions o;
  o.n = 300;
  o.image_size = 64;
  write_synthetic_dataset(dir.path(), o);
  auto key = [](const Sample& s) {
    return s.attributes.at("modality") + "|" + s.attributes.at("finding") + "|" + s.attributes.at("side") + "|" +
           s.attributes.at("zone");
  };
  std::set<std::string> seen;
  for (const auto& s : split_of(dir.path(), "train")) seen.insert(key(s));
  for (const auto& s : split_of(dir.path(), "val")) seen.insert(key(s));
  const auto test = split_of(dir.path(), "test");
  int abnormal = 0;
  for (const auto& s : test) {
    if (s.attributes.at("finding") == "normal") continue;
    ++abnormal;
    EXPECT_FALSE(seen.count(key(s))) << key(s) << " is in training";
  }
  EXPECT_GT(abnormal, 10);
}

TEST(Synthetic, TestSeenHoldsOtherStudiesOfTrainingCombinations) {
  TempDir dir;
  SynthOptions o;
  o.n = 300;
  o.image_size = 64;
  const auto counts = write_synthetic_dataset(dir.path(), o);
  auto key = [](const Sample& s) {
    return s.attributes.at("modality") + "|" + s.attributes.at("finding") + "|" + s.attributes.at("side") + "|" +
           s.attributes.at("zone");
  };
  std::set<std::string> seen, ids;
  for (const auto& s : split_of(dir.path(), "train")) {
    seen.insert(key(s));
    ids.insert(s.id);
  }
  const auto test_seen = split_of(dir.path(), "test_seen");
  EXPECT_EQ(static_cast<int64_t>(test_seen.size()), counts[3]);
  EXPECT_GT(test_seen.size(), 15u);  // about 10% of the seen combinations' 80% of 300
  int in_train = 0;
  for (const auto& s : test_seen) {
    EXPECT_FALSE(ids.count(s.id)) << s.id << " is also in train";
    SynthSpec spec;
    spec.modality = s.attributes.at("modality");
    spec.finding = s.attributes.at("finding");
    spec.side = s.attributes.at("side");
    spec.zone = s.attributes.at("zone");
    EXPECT_FALSE(held_out_combination(spec)) << key(s) << " is a held-out combination";
    in_train += seen.count(key(s)) > 0;
  }
  // A rare combination may have no training study at this size; most have several.
  EXPECT_GE(in_train, static_cast<int>(test_seen.size()) * 3 / 4);

  // Shares that leave no training split are refused by name, before anything is written.
  TempDir empty;
  o.val_fraction = 0.5;
  o.seen_test_fraction = 0.5;
  EXPECT_NE(
      testing::error_of([&] {
        write_synthetic_dataset(empty.path(), o);
      }).find("synth: --val-fraction (0.5) and --seen-test-fraction (0.5) must be >= 0 and add up to less than 1"),
      std::string::npos);
  EXPECT_FALSE(std::filesystem::exists(empty.file("train.jsonl")));
}

TEST(Synthetic, CaptionsNameTheFindingSideAndSize) {
  TempDir dir;
  SynthOptions o;
  o.n = 60;
  o.image_size = 64;
  write_synthetic_dataset(dir.path(), o);
  std::set<std::string> wordings;
  for (const char* split : {"train", "val", "test", "test_seen"}) {
    for (const auto& s : split_of(dir.path(), split)) {
      const auto& c = s.captions[0];
      wordings.insert(c.substr(0, c.find(' ')));
      const auto& f = s.attributes.at("finding");
      if (f == "normal") continue;
      EXPECT_NE(c.find(f), std::string::npos) << c;
      EXPECT_NE(c.find(s.attributes.at("side")), std::string::npos) << c;
      EXPECT_NE(c.find(s.attributes.at("size")), std::string::npos) << c;
    }
  }
  EXPECT_GE(wordings.size(), 4u);  // varied templates
}

TEST(Synthetic, SmallFindingsNearlyVanishAt224) {
  SynthSpec normal{"chest_xray", "normal", "", "", "", 0};
  SynthSpec small{"chest_xray", "nodule", "small", "right", "upper", 1};
  SynthSpec large = small;
  large.size = "large";
  const int64_t n = 512;
  auto diff_at = [&](const SynthSpec& spec, int side, int64_t* changed) {
    const auto a = render_study(normal, n, 9), b = render_study(spec, n, 9);
    cv::Mat ma(n, n, CV_8UC1, const_cast<uint8_t*>(a.data())), mb(n, n, CV_8UC1, const_cast<uint8_t*>(b.data()));
    cv::Mat da, db, d;
    if (changed != nullptr) {
      cv::absdiff(ma, mb, d);
      *changed = cv::countNonZero(d > 20);
    }
    cv::resize(ma, da, cv::Size(side, side), 0, 0, cv::INTER_AREA);
    cv::resize(mb, db, cv::Size(side, side), 0, 0, cv::INTER_AREA);
    cv::absdiff(da, db, d);
    double peak = 0;
    cv::minMaxLoc(d, nullptr, &peak);
    return peak;
  };
  int64_t small_pixels = 0, large_pixels = 0;
  const double small_full = diff_at(small, static_cast<int>(n), &small_pixels);
  const double small_224 = diff_at(small, 224, nullptr);
  diff_at(large, static_cast<int>(n), &large_pixels);
  EXPECT_GT(small_pixels, 0);
  EXPECT_LT(small_pixels, 40);  // a few pixels across
  EXPECT_GT(large_pixels, 200);
  EXPECT_LT(small_224, 0.6 * small_full) << small_full << " -> " << small_224;
}

TEST(Synthetic, MasksMarkEachStructureAndEachLesionWhereItIsDrawn) {
  SynthSpec normal{"chest_xray", "normal", "", "", "", 0};
  SynthSpec spec{"chest_xray", "nodule", "large", "left", "middle", 2};
  const int64_t n = 128;
  std::vector<uint8_t> mask_normal, mask;
  const auto a = render_study(normal, n, 9, &mask_normal);
  const auto b = render_study(spec, n, 9, &mask);
  EXPECT_EQ(a, render_study(normal, n, 9));  // drawing the mask changes nothing in the image
  ASSERT_EQ(mask.size(), static_cast<size_t>(n * n));
  std::set<int> ids;
  int64_t lesion_pixels = 0, brighter = 0;
  for (size_t i = 0; i < mask.size(); ++i) {
    ids.insert(mask[i]);
    if (mask[i] >= 10) {
      ++lesion_pixels;
      EXPECT_LT(mask_normal[i], 10);
      brighter += b[i] > a[i] + 40;  // the lesion is drawn there (noise is shared by the seed)
    }
  }
  // Background, body, both lungs, heart, spine, and the two nodules; a lesion covers the anatomy
  // it lies on, and it lies on the patient's left, the image's right.
  EXPECT_EQ(ids, (std::set<int>{0, 1, 2, 3, 4, 5, 10, 11}));
  EXPECT_GT(lesion_pixels, 20);
  EXPECT_GT(brighter, lesion_pixels / 2);
  for (int64_t y = 0; y < n; ++y)
    for (int64_t x = 0; x < n / 2; ++x) EXPECT_LT(mask[static_cast<size_t>(y * n + x)], 10);
}

TEST(Synthetic, DatasetLinesNameTheirMasks) {
  TempDir dir;
  SynthOptions o;
  o.n = 12;
  o.image_size = 64;
  write_synthetic_dataset(dir.path(), o);
  for (const auto& s : split_of(dir.path(), "train")) {
    EXPECT_EQ(s.mask, dir.path() + "/masks/" + s.id + ".png");
    EXPECT_EQ(s.attributes.count("mask"), 0u);
    const cv::Mat m = cv::imread(s.mask, cv::IMREAD_UNCHANGED);
    ASSERT_EQ(m.type(), CV_8UC1) << s.mask;
    double peak = 0;
    cv::minMaxLoc(m, nullptr, &peak);
    EXPECT_EQ(peak >= 10, s.attributes.at("finding") != "normal") << s.id;
  }
}

}  // namespace
}  // namespace msmedcap::data
