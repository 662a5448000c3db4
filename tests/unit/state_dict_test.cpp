// Strict loading of checkpoints into modules: the report and the config policy.
#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/modules/normalization.h>

#include "msmedcap/core/check.h"
#include "msmedcap/io/state_dict.h"
#include "test_utils.h"

namespace msmedcap::io {
namespace {

using msmedcap::testing::TempDir;

struct TinyImpl : torch::nn::Module {
  TinyImpl() {
    proj = register_module("proj", torch::nn::Linear(4, 3));
    norm = register_module("norm", torch::nn::LayerNorm(torch::nn::LayerNormOptions({3})));
    steps = register_buffer("steps", torch::zeros({1}, at::kLong));
  }
  torch::nn::Linear proj{nullptr};
  torch::nn::LayerNorm norm{nullptr};
  at::Tensor steps;
};
TORCH_MODULE(Tiny);

std::string save(const TempDir& dir, const StateDict& tensors) {
  const std::string path = dir.file("ckpt.safetensors");
  save_safetensors(path, tensors);
  return path;
}

StateDict randomized(const Tiny& m) {
  StateDict out;
  for (const auto& [name, t] : module_state_dict(*m)) out[name] = at::randn_like(t.to(at::kFloat)).to(t.scalar_type());
  return out;
}

TEST(StateDict, NamesFollowTheModuleTree) {
  Tiny m;
  const auto sd = module_state_dict(*m);
  std::vector<std::string> names;
  for (const auto& item : sd) names.push_back(item.first);
  EXPECT_EQ(names, (std::vector<std::string>{"norm.bias", "norm.weight", "proj.bias", "proj.weight", "steps"}));
}

TEST(StateDict, SaveLoadIsBitExact) {
  TempDir dir;
  Tiny a, b;
  const auto path = save(dir, module_state_dict(*a));
  const auto report = load_state_dict(*b, TensorStore::open(path));
  EXPECT_TRUE(report.ok());
  EXPECT_EQ(report.loaded.size(), 5u);
  for (const auto& [name, t] : module_state_dict(*a)) {
    EXPECT_TRUE(at::equal(t, module_state_dict(*b).at(name))) << name;
  }
}

TEST(StateDict, MissingTensorFailsUnlessAllowed) {
  TempDir dir;
  Tiny a, b;
  auto tensors = randomized(a);
  tensors.erase("norm.weight");
  tensors.erase("norm.bias");
  const auto path = save(dir, tensors);
  const auto before = module_state_dict(*b).at("proj.weight").clone();
  try {
    load_state_dict(*b, TensorStore::open(path));
    FAIL() << "no throw";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("2 missing (norm.bias, norm.weight)"), std::string::npos) << msg;
    EXPECT_NE(msg.find(path), std::string::npos) << msg;
  }
  // A failed load copies nothing.
  EXPECT_TRUE(at::equal(module_state_dict(*b).at("proj.weight"), before));
  LoadOptions options;
  options.policy.allow_missing = {"norm."};
  const auto report = load_state_dict(*b, TensorStore::open(path), options);
  EXPECT_EQ(report.allowed_missing.size(), 2u);
  EXPECT_TRUE(at::equal(module_state_dict(*b).at("proj.weight"), tensors.at("proj.weight")));
}

TEST(StateDict, UnexpectedTensorFailsUnlessAllowed) {
  TempDir dir;
  Tiny a, b;
  auto tensors = randomized(a);
  tensors["extra.head.weight"] = at::ones({2});
  const auto path = save(dir, tensors);
  try {
    load_state_dict(*b, TensorStore::open(path));
    FAIL() << "no throw";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("1 unexpected (extra.head.weight)"), std::string::npos) << e.what();
  }
  LoadOptions options;
  options.policy.allow_unexpected = {"extra."};
  const auto report = load_state_dict(*b, TensorStore::open(path), options);
  EXPECT_EQ(report.ignored, std::vector<std::string>{"extra.head.weight"});
}

TEST(StateDict, ShapeMismatchAlwaysFails) {
  TempDir dir;
  Tiny a, b;
  auto tensors = randomized(a);
  tensors["proj.weight"] = at::ones({4, 3});
  const auto path = save(dir, tensors);
  const auto report = check_state_dict(*b, TensorStore::open(path));
  ASSERT_EQ(report.mismatched.size(), 1u);
  EXPECT_NE(report.summary().find("proj.weight: model [3, 4] vs file [4, 3]"), std::string::npos) << report.summary();
  LoadOptions lenient;
  lenient.policy.allow_missing = {"proj."};
  EXPECT_THROW(load_state_dict(*b, TensorStore::open(path), lenient), Error);
  const auto j = report.to_json();
  EXPECT_EQ(j["mismatched"][0]["found"], config::Json::array({4, 3}));
}

TEST(StateDict, PrefixMapsStandaloneFilesUnderAComponent) {
  TempDir dir;
  Tiny a;
  StateDict tensors;
  for (const auto& [name, t] : randomized(a)) {
    if (name.rfind("proj.", 0) == 0) tensors[name.substr(5)] = t;  // a file holding only "proj"
  }
  const auto path = save(dir, tensors);
  LoadOptions options;
  options.prefix = "proj.";
  options.policy.allow_missing = {"norm.", "steps"};
  Tiny b;
  const auto report = load_state_dict(*b, TensorStore::open(path), options);
  EXPECT_EQ(report.loaded, (std::vector<std::string>{"proj.bias", "proj.weight"}));
  EXPECT_TRUE(at::equal(b->proj->weight, tensors.at("weight")));
}

TEST(StateDict, HalfPrecisionFileLoadsIntoFloatModule) {
  TempDir dir;
  Tiny a, b;
  StateDict tensors;
  for (const auto& [name, t] : randomized(a)) tensors[name] = t.is_floating_point() ? t.to(at::kHalf) : t;
  const auto path = save(dir, tensors);
  load_state_dict(*b, TensorStore::open(path));
  EXPECT_EQ(b->proj->weight.scalar_type(), at::kFloat);
  EXPECT_TRUE(at::equal(b->proj->weight, tensors.at("proj.weight").to(at::kFloat)));
}

}  // namespace
}  // namespace msmedcap::io
