// Parity with HuggingFace transformers on the tiny random fixtures (tests/data/fixtures):
// every output within 1e-4 absolute of the float32 reference, the loss within 1e-5, and the
// gradient of the loss within 1e-4 absolute + 1e-3 relative of grads.safetensors.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <iostream>

#include "msmedcap/config/config_io.h"
#include "msmedcap/config/run_config.h"
#include "msmedcap/core/check.h"
#include "msmedcap/io/tensor_store.h"
#include "msmedcap/models/pretrained.h"
#include "tensor_checks.h"
#include "test_device.h"
#include "test_utils.h"

namespace msmedcap::models {
namespace {

using msmedcap::testing::data_path;
using msmedcap::testing::expect_tensor_near;
using msmedcap::testing::fixture_path;
using msmedcap::testing::test_device;

config::ModelConfig fixture_config(const std::string& name) {
  const std::string dir = fixture_path(name);
  if (name == "tiny_msmedcap_opt") {
    config::RunConfig run;
    config::resolve_config(run, {{data_path("tiny_msmedcap_opt.json")}, {}});
    return run.model;
  }
  return model_config_from_hf_blip2(read_hf_config(dir), dir + "/config.json");
}

MsMedCapModel load_fixture(const std::string& name, const LoadTarget& target = {at::kFloat, test_device()},
                           config::ModelConfig cfg = {}, bool own_config = false) {
  const std::string dir = fixture_path(name);
  if (!own_config) cfg = fixture_config(name);
  const std::string weights = name == "tiny_msmedcap_opt" ? dir + "/model.safetensors" : dir;
  return load_model(cfg, {{weights, "", "hf"}}, {}, target);
}

double max_error(const at::Tensor& got, const at::Tensor& want) {
  EXPECT_EQ(got.sizes(), want.sizes());
  if (got.sizes() != want.sizes()) return 1e9;
  return (got.to(at::kCPU, at::kDouble) - want.to(at::kCPU, at::kDouble)).abs().max().item<double>();
}

/// A reference tensor on `device` (the test device unless given).
at::Tensor input(const io::TensorStore& ref, const std::string& key, const c10::Device& device = test_device()) {
  return ref.view(key).to(device);
}

CaptionerOutput run_fixture(MsMedCapModel& model, const io::TensorStore& ref) {
  const auto device = model->parameters().front().device();
  const bool has_sam = ref.contains("sam_pixel_values");
  return model->forward(
      input(ref, "pixel_values", device), has_sam ? input(ref, "sam_pixel_values", device) : at::Tensor(),
      input(ref, "input_ids", device), input(ref, "attention_mask", device), input(ref, "labels", device));
}

void check_outputs(const std::string& name, const c10::Device& device) {
  auto model = load_fixture(name, {at::kFloat, device});
  const auto ref = io::TensorStore::open(fixture_path(name + "/reference.safetensors"));
  const auto out = run_fixture(model, ref);
  const std::pair<const char*, at::Tensor> outputs[] = {
      {"vision_embeddings_output", out.vision_embeddings_output},
      {"vision_last_hidden_state", out.vision_last_hidden_state},
      {"vision_pooler_output", out.vision_pooler_output},
      {"qformer_last_hidden_state", out.qformer_last_hidden_state},
      {"language_projection", out.language_projection},
      {"sam_image_embeddings", out.sam_image_embeddings},
      {"sam_qformer_last_hidden_state", out.sam_qformer_last_hidden_state},
      {"sam_language_projection", out.sam_language_projection},
      {"logits", out.logits}};
  double worst = 0;
  int compared = 0;
  for (const auto& [key, tensor] : outputs) {
    if (!ref.contains(key)) continue;
    ASSERT_TRUE(tensor.defined()) << name << ": no " << key;
    worst = std::max(worst, expect_tensor_near(tensor, ref.view(key), 1e-4, 0, name + " " + key));
    ++compared;
  }
  EXPECT_GE(compared, 6) << name;
  const double loss_error = std::abs(out.loss.item<double>() - ref.view("loss").item<double>());
  EXPECT_LT(loss_error, 1e-5) << name;
  std::cout << "[golden] " << name << ": " << compared << " outputs, max abs error " << worst << ", loss error "
            << loss_error << "\n";
}

void check_gradients(const std::string& name) {
  auto model = load_fixture(name);
  const auto ref = io::TensorStore::open(fixture_path(name + "/reference.safetensors"));
  const auto grads = io::TensorStore::open(fixture_path(name + "/grads.safetensors"));
  const auto out = run_fixture(model, ref);
  out.loss.backward();
  double worst = 0;
  int compared = 0;
  for (const auto& item : model->named_parameters()) {
    if (!grads.contains(item.key())) continue;
    const auto got = item.value().grad();
    ASSERT_TRUE(got.defined()) << name << ": no gradient for " << item.key();
    worst = std::max(worst, expect_tensor_near(got, grads.view(item.key()), 1e-4, 1e-3, name + " " + item.key()));
    ++compared;
  }
  // Every trainable parameter of the model has a reference gradient.
  EXPECT_EQ(compared, static_cast<int>(model->parameters().size())) << name;
  std::cout << "[golden] " << name << ": " << compared << " gradients, max abs error " << worst << "\n";
}

// Half precision (runtime.dtype bf16): every output within a tolerance of the float32 HF
// reference, relative to the output's own scale. bf16 keeps 8 significant bits (relative
// rounding 2^-9 = 0.2% per operation); the tolerance, 5% of the largest magnitude for the
// outputs and 2% for the loss, allows for that rounding through a dozen layers
// (docs/PERFORMANCE.md, "Precision", has the measured errors).
void check_bf16(const std::string& name, const c10::Device& device) {
  auto model = load_fixture(name, {at::kBFloat16, device});
  for (const auto& p : model->parameters()) ASSERT_EQ(p.scalar_type(), at::kBFloat16) << name;
  const auto ref = io::TensorStore::open(fixture_path(name + "/reference.safetensors"));
  const auto out = run_fixture(model, ref);
  double worst = 0;
  for (const auto& [key, tensor] :
       {std::pair<const char*, at::Tensor>{"qformer_last_hidden_state", out.qformer_last_hidden_state},
        {"language_projection", out.language_projection},
        {"sam_language_projection", out.sam_language_projection},
        {"logits", out.logits}}) {
    if (!ref.contains(key)) continue;
    ASSERT_TRUE(tensor.defined()) << key;
    EXPECT_EQ(tensor.scalar_type(), at::kBFloat16) << key;
    const auto want = ref.view(key);
    const double relative = max_error(tensor, want) / want.abs().max().item<double>();
    EXPECT_LT(relative, 0.05) << name << " " << key;
    worst = std::max(worst, relative);
  }
  EXPECT_EQ(out.loss.scalar_type(), at::kFloat);  // the loss is computed in float32
  const double loss_rel =
      std::abs(out.loss.item<double>() - ref.view("loss").item<double>()) / std::abs(ref.view("loss").item<double>());
  EXPECT_LT(loss_rel, 0.02) << name;
  std::cout << "[golden] " << name << " bf16: max error / scale " << worst << ", loss relative error " << loss_rel
            << "\n";
}

// Every fixture's outputs on each device in each dtype: float32 within 1e-4 of HF's, bf16 within
// the tolerance above. CUDA cases skip where there is no CUDA device (scripts/gpu_check.sh runs
// them on the lent GPU).
class ModelGoldenOutputs : public ::testing::TestWithParam<std::tuple<std::string, std::string, at::ScalarType>> {};

TEST_P(ModelGoldenOutputs, MatchHf) {
  const auto& [name, device_name, dtype] = GetParam();
  const c10::Device device(device_name);
  if (device.is_cuda() && !at::hasCUDA()) GTEST_SKIP() << "no CUDA device here";
  if (dtype == at::kFloat) {
    check_outputs(name, device);
  } else {
    check_bf16(name, device);
  }
}

INSTANTIATE_TEST_SUITE_P(
    Fixtures, ModelGoldenOutputs,
    ::testing::Combine(::testing::Values("tiny_blip2_opt", "tiny_blip2_llama", "tiny_blip2_gpt2", "tiny_msmedcap_opt"),
                       ::testing::Values("cpu", "cuda"), ::testing::Values(at::kFloat, at::kBFloat16)),
    [](const auto& info) {
      return std::get<0>(info.param) + "_" + std::get<1>(info.param) + "_" +
             (std::get<2>(info.param) == at::kFloat ? "fp32" : "bf16");
    });

TEST(ModelGolden, Bf16WeightsTakeHalfTheBytes) {
  double fp32 = 0, bf16 = 0;
  for (const auto& p : load_fixture("tiny_msmedcap_opt")->parameters()) fp32 += static_cast<double>(p.nbytes());
  for (const auto& p : load_fixture("tiny_msmedcap_opt", {at::kBFloat16, at::Device(at::kCPU)})->parameters()) {
    bf16 += static_cast<double>(p.nbytes());
  }
  EXPECT_DOUBLE_EQ(bf16 * 2, fp32);
}

// Today's hub config (image_token_index): input_ids carry P placeholders before BOS and the
// model writes the prefix into them, as HF's Blip2ForConditionalGeneration does. The decoder
// then sees the very embeddings of the legacy concatenation, so the logits are those of the
// reference; HF's loss runs over every position, so the last query's prediction of the first
// text token now counts (labels of the placeholders are -100).
void check_placeholders(const std::string& name) {
  auto cfg = fixture_config(name);
  const auto ref = io::TensorStore::open(fixture_path(name + "/reference.safetensors"));
  const auto ids = ref.view("input_ids");
  int64_t image_token = cfg.decoder.vocab_size - 1;  // an id the text does not use
  while ((ids == image_token).any().item<bool>()) --image_token;
  cfg.image_token_index = image_token;
  auto model = load_fixture(name, {at::kFloat, test_device()}, cfg, true);
  const int64_t p = cfg.prefix_tokens();
  const int64_t b = ids.size(0), t = ids.size(1);
  const auto placeholder_ids = at::cat({at::full({b, p}, image_token, at::kLong), ids}, 1);
  const auto mask = at::cat({at::ones({b, p}, at::kLong), ref.view("attention_mask")}, 1);
  const auto labels = at::cat({at::full({b, p}, -100, at::kLong), ref.view("labels")}, 1);
  const bool has_sam = ref.contains("sam_pixel_values");
  const auto dev = test_device();
  const auto out = model->forward(input(ref, "pixel_values"), has_sam ? input(ref, "sam_pixel_values") : at::Tensor(),
                                  placeholder_ids.to(dev), mask.to(dev), labels.to(dev));
  const auto want = ref.view("logits");  // [B, P + T, V]
  EXPECT_LT(max_error(out.logits, want), 1e-4) << name;
  // HF's loss on these labels, from the reference logits: positions P-1 .. P+T-2 predict labels 0 .. T-1.
  const auto shifted = want.slice(1, p - 1, p + t - 1).reshape({-1, want.size(-1)});
  const auto expected =
      at::cross_entropy_loss(shifted, ref.view("labels").reshape({-1}), {}, at::Reduction::Mean, -100);
  EXPECT_NEAR(out.loss.item<double>(), expected.item<double>(), 1e-5) << name;
  // A row whose placeholders do not match the prefix is refused by name.
  EXPECT_THROW(model->forward(input(ref, "pixel_values"), has_sam ? input(ref, "sam_pixel_values") : at::Tensor(),
                              ids.to(dev), input(ref, "attention_mask"), input(ref, "labels")),
               Error);
}

TEST(ModelGolden, ImageTokenPlaceholdersAsTodaysHubConfig) {
  check_placeholders("tiny_blip2_opt");
  check_placeholders("tiny_msmedcap_opt");
}

TEST(ModelGolden, Blip2OptGradients) { check_gradients("tiny_blip2_opt"); }
TEST(ModelGolden, Blip2LlamaGradients) { check_gradients("tiny_blip2_llama"); }
TEST(ModelGolden, Blip2Gpt2Gradients) { check_gradients("tiny_blip2_gpt2"); }
TEST(ModelGolden, MsMedCapOptGradients) { check_gradients("tiny_msmedcap_opt"); }

TEST(ModelGolden, SamEncoderHiddenStatesAndNeck) {
  const std::string dir = fixture_path("tiny_sam");
  SamModel sam(sam_config_from_hf(read_hf_config(dir), dir + "/config.json"));
  load_weights(*sam, dir, "", {});
  sam->to(test_device());
  const auto ref = io::TensorStore::open(dir + "/reference.safetensors");
  std::vector<at::Tensor> hidden;
  const auto out = sam->vision_encoder(input(ref, "pixel_values"), &hidden);
  double worst = expect_tensor_near(out, ref.view("vision_last_hidden_state"), 1e-4, 0, "vision_last_hidden_state");
  for (size_t i = 0; i < hidden.size(); ++i) {
    const std::string key = "vision_hidden_state_" + std::to_string(i);
    ASSERT_TRUE(ref.contains(key));
    worst = std::max(worst, expect_tensor_near(hidden[i], ref.view(key), 1e-4, 0, key));
  }
  std::cout << "[golden] tiny_sam: max abs error " << worst << "\n";
}

}  // namespace
}  // namespace msmedcap::models

namespace msmedcap::models {
namespace {

using msmedcap::testing::expect_tensor_near;

// HF CLIPVisionModel semantics against goldens computed with PyTorch's own modules
// (tests/golden/make_clip_golden.py, float64 reference stored as float32).
TEST(ModelGolden, ClipVisionModel) {
  const std::string dir = msmedcap::testing::data_path("tiny_clip_vision");
  ClipVisionModel clip(clip_vision_config_from_hf(read_hf_config(dir), dir + "/config.json"));
  const auto report = load_weights(*clip, dir, "", {});
  EXPECT_EQ(report.loaded.size(), io::module_state_dict(*clip).size());
  const auto ref = io::TensorStore::open(dir + "/reference.safetensors");
  clip->to(msmedcap::testing::test_device());
  const auto out = clip->vision_model(ref.view("pixel_values").to(msmedcap::testing::test_device()));
  double worst = 0;
  for (const auto& [key, t] : {std::pair{"vision_embeddings_output", out.embeddings},
                               {"vision_last_hidden_state", out.last_hidden_state},
                               {"vision_pooler_output", out.pooler_output},
                               {"vision_features", out.features}}) {
    worst = std::max(worst, expect_tensor_near(t, ref.view(key), 1e-4, 0, key));
  }
  std::cout << "[golden] tiny_clip_vision: max abs error " << worst << "\n";
}

}  // namespace
}  // namespace msmedcap::models
