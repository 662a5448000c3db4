// Mixtures, the threaded loader (determinism, resumption, sharding, bad samples) and the
// feature cache (round trip, provenance).
#include <gtest/gtest.h>

#include <opencv2/imgcodecs.hpp>
#include <set>
#include <torch/torch.h>

#include "msmedcap/core/check.h"
#include "msmedcap/data/feature_cache.h"
#include "msmedcap/data/loader.h"
#include "msmedcap/data/mixture.h"
#include "test_utils.h"

namespace msmedcap {
namespace {

std::vector<data::Sample> numbered(const std::string& prefix, int n) {
  std::vector<data::Sample> v;
  for (int i = 0; i < n; ++i)
    v.push_back(
        {prefix + std::to_string(i), prefix + std::to_string(i) + ".png", {"caption " + std::to_string(i)}, {}});
  return v;
}

/// A processor that needs no files: the sample's number as a tensor, plus one augmentation draw.
data::ProcessFn fake_process() {
  return [](const data::Sample& s, std::mt19937_64& rng) {
    if (s.id.find("bad") != std::string::npos) MSMEDCAP_FAIL(s.image, ": corrupt");
    data::Example ex;
    ex.clip =
        torch::tensor({static_cast<float>(std::hash<std::string>()(s.id) % 1000), static_cast<float>(rng() % 1000)});
    return ex;
  };
}

std::vector<std::string> epoch_ids(data::DataLoader& loader, std::vector<torch::Tensor>* tensors = nullptr) {
  std::vector<std::string> ids;
  while (auto b = loader.next()) {
    for (const auto& s : b->samples) ids.push_back(s.id);
    if (tensors) tensors->push_back(b->clip);
  }
  return ids;
}

TEST(Mixture, WeightsSetPerEpochCountsAndSmallSourcesRepeat) {
  const data::Mixture m({numbered("a", 10), numbered("b", 1000)}, {1.0, 1.0}, 100);
  EXPECT_EQ(m.per_epoch(), (std::vector<int64_t>{50, 50}));
  const auto order = m.epoch_order(3, 0, true);
  ASSERT_EQ(order.size(), 100u);
  std::map<std::string, int> count;
  for (auto i : order) ++count[m.samples()[static_cast<size_t>(i)].id];
  EXPECT_EQ(count["a0"], 5);  // 10 samples, 50 draws: each exactly 5 times (full passes)
  EXPECT_EQ(m.epoch_order(3, 0, true), order);
  EXPECT_NE(m.epoch_order(3, 1, true), order);
  EXPECT_NE(m.epoch_order(4, 0, true), order);
  // Largest remainder keeps the total.
  const data::Mixture r({numbered("a", 5), numbered("b", 5), numbered("c", 5)}, {1, 1, 1}, 10);
  EXPECT_EQ(r.per_epoch()[0] + r.per_epoch()[1] + r.per_epoch()[2], 10);
  // The large source is subsampled without repeats within its pass: 1000 samples over 20 epochs.
  std::set<int64_t> b_seen;
  for (int e = 0; e < 20; ++e)
    for (auto i : m.epoch_order(3, e, true))
      if (i >= 10) b_seen.insert(i);
  EXPECT_EQ(b_seen.size(), 1000u);
  EXPECT_THROW(data::Mixture({numbered("a", 3)}, {0.0}), Error);
}

TEST(Loader, SameBatchesWhateverTheWorkerCount) {
  auto mix = std::make_shared<data::Mixture>(std::vector<std::vector<data::Sample>>{numbered("s", 37)},
                                             std::vector<double>{1});
  config::LoaderConfig cfg;
  cfg.batch_size = 4;
  cfg.workers = 0;
  data::DataLoader serial(mix, fake_process(), cfg);
  std::vector<torch::Tensor> t0, t3;
  const auto ids0 = epoch_ids(serial, &t0);
  cfg.workers = 3;
  cfg.prefetch = 2;
  data::DataLoader threaded(mix, fake_process(), cfg);
  const auto ids3 = epoch_ids(threaded, &t3);
  EXPECT_EQ(ids0, ids3);
  ASSERT_EQ(t0.size(), t3.size());
  for (size_t i = 0; i < t0.size(); ++i) EXPECT_TRUE(torch::equal(t0[i], t3[i]));
  EXPECT_EQ(serial.batches_per_epoch(), 9);  // drop_last: 37 / 4
  EXPECT_EQ(ids0.size(), 36u);
  // The next epoch is a different order; the same epoch again is the same.
  const auto next0 = epoch_ids(serial);
  EXPECT_NE(next0, ids0);
  EXPECT_EQ(threaded.state().epoch, 1);
}

TEST(Loader, ResumesFromItsStateExactly) {
  auto mix = std::make_shared<data::Mixture>(std::vector<std::vector<data::Sample>>{numbered("s", 30)},
                                             std::vector<double>{1});
  config::LoaderConfig cfg;
  cfg.batch_size = 3;
  cfg.workers = 2;
  data::DataLoader full(mix, fake_process(), cfg);
  std::vector<torch::Tensor> all;
  epoch_ids(full, &all);
  epoch_ids(full, &all);
  data::DataLoader first(mix, fake_process(), cfg);
  std::vector<torch::Tensor> resumed;
  epoch_ids(first, &resumed);
  for (int k = 0; k < 4; ++k) resumed.push_back(first.next()->clip);
  const auto saved = data::LoaderState::from_json(first.state().to_json(), "test");
  EXPECT_EQ(saved.epoch, 1);
  EXPECT_EQ(saved.batch, 4);
  data::DataLoader second(mix, fake_process(), cfg);
  second.restore(saved);
  while (auto b = second.next()) resumed.push_back(b->clip);
  ASSERT_EQ(all.size(), resumed.size());
  for (size_t i = 0; i < all.size(); ++i) EXPECT_TRUE(torch::equal(all[i], resumed[i])) << i;
  EXPECT_THROW(data::LoaderState::from_json(config::Json{{"epoch", 1}}, "ckpt"), Error);
}

TEST(Loader, RanksSplitTheEpochAndPadByWrapping) {
  auto mix = std::make_shared<data::Mixture>(std::vector<std::vector<data::Sample>>{numbered("s", 10)},
                                             std::vector<double>{1});
  config::LoaderConfig cfg;
  cfg.batch_size = 2;
  cfg.drop_last = false;
  std::multiset<int64_t> union_ranks;
  for (int r = 0; r < 3; ++r) {
    data::DataLoader loader(mix, fake_process(), cfg, r, 3);
    const auto order = loader.rank_order(0);
    EXPECT_EQ(order.size(), 4u);  // ceil(10 / 3)
    union_ranks.insert(order.begin(), order.end());
    EXPECT_EQ(loader.batches_per_epoch(), 2);
  }
  EXPECT_EQ(union_ranks.size(), 12u);
  std::set<int64_t> distinct(union_ranks.begin(), union_ranks.end());
  EXPECT_EQ(distinct.size(), 10u);  // every sample, two of them twice
}

TEST(Loader, BadSamplesAreSkippedCountedAndBudgeted) {
  auto samples = numbered("s", 20);
  samples[3].id = "bad3";
  samples[11].id = "bad11";
  auto mix = std::make_shared<data::Mixture>(std::vector<std::vector<data::Sample>>{samples}, std::vector<double>{1});
  config::LoaderConfig cfg;
  cfg.batch_size = 5;
  cfg.shuffle = false;
  cfg.max_bad_fraction = 0.05;  // 5 of the 100-sample floor
  data::DataLoader loader(mix, fake_process(), cfg);
  const auto ids = epoch_ids(loader);
  EXPECT_EQ(ids.size(), 18u);
  EXPECT_EQ(loader.state().bad, 2);
  EXPECT_EQ(loader.state().seen, 20);
  ASSERT_EQ(loader.problems().size(), 2u);
  EXPECT_NE(loader.problems()[0].find("s3.png: corrupt"), std::string::npos);
  cfg.max_bad_fraction = 0.0;
  data::DataLoader strict(mix, fake_process(), cfg);
  try {
    epoch_ids(strict);
    FAIL() << "a zero budget must stop at the first bad sample";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("max_bad_fraction"), std::string::npos);
  }
}

TEST(Loader, RealImagesEmptyCaptionsAndMissingFiles) {
  testing::TempDir dir;
  std::vector<data::Sample> samples;
  for (int i = 0; i < 4; ++i) {
    cv::Mat img(30 + i, 40, CV_8UC1, cv::Scalar(50 * i));
    cv::imwrite(dir.file(std::to_string(i) + ".png"), img);
    samples.push_back({std::to_string(i), dir.file(std::to_string(i) + ".png"), {"a caption"}, {}});
  }
  samples[1].captions = {"   "};
  samples[2].image = dir.file("gone.png");
  auto mix = std::make_shared<data::Mixture>(std::vector<std::vector<data::Sample>>{samples}, std::vector<double>{1});
  config::LoaderConfig cfg;
  cfg.batch_size = 4;
  cfg.max_bad_fraction = 0.5;
  config::ImageTransformConfig t;
  t.clip_size = 16;
  t.sam_size = 32;
  data::DataLoader loader(mix, data::make_example_processor(t, {}), cfg);
  const auto b = loader.next();
  ASSERT_TRUE(b.has_value());
  EXPECT_EQ(b->samples.size(), 2u);
  EXPECT_EQ(b->skipped, 2);
  EXPECT_EQ(b->clip.sizes(), (std::vector<int64_t>{2, 3, 16, 16}));
  EXPECT_EQ(b->sam.sizes(), (std::vector<int64_t>{2, 3, 32, 32}));
}

TEST(FeatureCache, RoundTripShardsAndProvenance) {
  testing::TempDir dir;
  const config::Json prov = {{"branch", "sam"}, {"weights", "abc"}, {"transform", {{"sam_size", 1024}}}};
  {
    data::FeatureCacheWriter w(dir.file("cache"), prov, 100);  // tiny shards: one per feature
    w.add("sam/a.png", torch::full({2, 3, 3}, 0.5f));
    w.add("sam/b.png", torch::arange(18, torch::kFloat32).view({2, 3, 3}));
    EXPECT_EQ(w.finish(), 2);
  }
  const data::FeatureCache cache(dir.file("cache"), prov);
  EXPECT_EQ(cache.size(), 2);
  EXPECT_TRUE(torch::equal(cache.get("sam/b.png"), torch::arange(18, torch::kFloat32).view({2, 3, 3})));
  EXPECT_THROW(cache.get("sam/c.png"), Error);
  config::Json other = prov;
  other["transform"]["sam_size"] = 512;
  try {
    data::FeatureCache mismatch(dir.file("cache"), other);
    FAIL() << "a provenance mismatch must be refused";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("transform.sam_size"), std::string::npos) << e.what();
  }
  // An interrupted extraction (no index) is not a cache, and a finished one is not overwritten.
  {
    data::FeatureCacheWriter w(dir.file("partial"), prov);
    w.add("sam/a.png", torch::ones({2}));
  }
  EXPECT_THROW(data::FeatureCache(dir.file("partial"), prov), Error);
  EXPECT_THROW(data::FeatureCacheWriter(dir.file("cache"), prov), Error);
  data::FeatureCacheWriter w(dir.file("big"), prov);
  EXPECT_THROW(w.add("sam/x", torch::full({1}, 1e6f)), Error);  // beyond float16
}

}  // namespace
}  // namespace msmedcap
