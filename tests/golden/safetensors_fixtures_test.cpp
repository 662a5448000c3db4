// Every safetensors file written by Python (tests/data/fixtures, from HF transformers) is read
// and re-written byte-identically, through the raw writer and through LibTorch tensors.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <filesystem>

#include "msmedcap/io/safetensors.h"
#include "msmedcap/io/tensor_store.h"
#include "test_utils.h"

namespace msmedcap::io {
namespace {

using msmedcap::testing::fixture_path;
using msmedcap::testing::read_text;
using msmedcap::testing::TempDir;

std::vector<std::string> fixture_files() {
  std::vector<std::string> files;
  for (const auto& entry : std::filesystem::recursive_directory_iterator(fixture_path(""))) {
    if (entry.path().extension() == ".safetensors") files.push_back(entry.path().string());
  }
  std::sort(files.begin(), files.end());
  return files;
}

TEST(SafetensorsFixtures, AllFixturesArePresent) {
  // 4 BLIP-2/MSMedCap folders x {model, reference, grads} + tiny_sam x {model, reference}.
  EXPECT_EQ(fixture_files().size(), 14u) << "fixtures missing under " << fixture_path("");
}

TEST(SafetensorsFixtures, RawRewriteIsByteIdentical) {
  for (const auto& path : fixture_files()) {
    const SafetensorsFile file(path);
    std::vector<RawTensor> tensors;
    for (const auto& t : file.tensors()) tensors.push_back({t.name, t.dtype, t.shape, file.data(t)});
    EXPECT_TRUE(serialize_safetensors(tensors, file.metadata()) == read_text(path)) << path;
  }
}

TEST(SafetensorsFixtures, TorchRewriteIsByteIdentical) {
  TempDir dir;
  for (const auto& path : fixture_files()) {
    const TensorStore store = TensorStore::open(path);
    const std::string out = dir.file("rewrite.safetensors");
    save_safetensors(out, store.load_all(), store.metadata());
    EXPECT_TRUE(read_text(out) == read_text(path)) << path;
  }
}

TEST(SafetensorsFixtures, ValuesAreReadAsWritten) {
  // The float64 reference outputs rounded to float32 stay close to the float32 outputs
  // (1e-4 is the fixtures' stated float32 error budget): a check that bytes become numbers.
  const TensorStore store = TensorStore::open(fixture_path("tiny_blip2_opt/reference.safetensors"));
  const auto f32 = store.view("logits");
  const auto f64 = store.view("logits_f64");
  EXPECT_EQ(f32.sizes(), (at::IntArrayRef{2, 15, 1000}));
  EXPECT_LT((f32.to(at::kDouble) - f64).abs().max().item<double>(), 1e-4);
  EXPECT_EQ(store.view("input_ids").scalar_type(), at::kLong);
}

}  // namespace
}  // namespace msmedcap::io
