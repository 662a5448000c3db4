// `msmedcap forward` end to end on the fixtures: outputs, loss and greedy sequences written to
// safetensors and compared with the HF references; bad inputs exit 1 with one line.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <torch/csrc/autograd/grad_mode.h>
#include <torch/cuda.h>

#include "msmedcap/config/fields.h"
#include "msmedcap/io/tensor_store.h"
#include "msmedcap/models/pretrained.h"
#include "test_utils.h"

namespace msmedcap {
namespace {

using msmedcap::testing::count_lines;
using msmedcap::testing::data_path;
using msmedcap::testing::fixture_path;
using msmedcap::testing::run_msmedcap;
using msmedcap::testing::TempDir;
using msmedcap::testing::write_text;

double max_error(const at::Tensor& a, const at::Tensor& b) {
  return (a.to(at::kDouble) - b.to(at::kDouble)).abs().max().item<double>();
}

TEST(ForwardCli, HfBlip2DirectoryOutputsAndGreedy) {
  TempDir dir;
  const std::string fixture = fixture_path("tiny_blip2_opt");
  write_text(dir.file("gen.json"), R"({"max_new_tokens": 16, "num_beams": 1, "eos_token_id": 2, "pad_token_id": 1})");
  const auto r = run_msmedcap("forward --hf " + fixture + " --inputs " + fixture + "/reference.safetensors --output " +
                              dir.file("out.safetensors") + " --generate " + dir.file("gen.json") +
                              " --prompt-tokens 3 --threads 1");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto out = io::TensorStore::open(dir.file("out.safetensors"));
  const auto ref = io::TensorStore::open(fixture + "/reference.safetensors");
  for (const char* key : {"vision_embeddings_output", "vision_last_hidden_state", "vision_pooler_output",
                          "qformer_last_hidden_state", "language_projection", "logits"}) {
    ASSERT_TRUE(out.contains(key)) << key;
    EXPECT_LT(max_error(out.view(key), ref.view(key)), 1e-4) << key;
  }
  EXPECT_LT(max_error(out.view("loss"), ref.view("loss")), 1e-5);
  EXPECT_TRUE(at::equal(out.view("sequences"), ref.view("gen_greedy_prompt").slice(1, 1)));
  // The output records the resolved config that produced it.
  std::string recorded;
  for (const auto& [key, value] : out.metadata()) {
    if (key == "msmedcap_config") recorded = value;
  }
  ASSERT_FALSE(recorded.empty());
  EXPECT_EQ(config::Json::parse(recorded)["runtime"]["threads"], 1);
}

TEST(ForwardCli, CudaDeviceWithoutCudaIsAClearError) {
  if (torch::cuda::is_available()) GTEST_SKIP() << "CUDA present";
  TempDir dir;
  const std::string fixture = fixture_path("tiny_blip2_opt");
  const auto r = run_msmedcap("forward --device cuda --hf " + fixture + " --inputs " + fixture +
                              "/reference.safetensors --output " + dir.file("out.safetensors"));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(count_lines(r.err), 1u) << r.err;
  EXPECT_NE(r.err.find("CUDA is not available"), std::string::npos) << r.err;
  EXPECT_FALSE(std::filesystem::exists(dir.file("out.safetensors")));
}

TEST(ForwardCli, MsMedCapConfigWithWeightsList) {
  TempDir dir;
  const std::string fixture = fixture_path("tiny_msmedcap_opt");
  write_text(dir.file("gen.json"), R"({"max_new_tokens": 12, "eos_token_id": 2, "pad_token_id": 1,
                                       "repetition_penalty": 1.5, "no_repeat_ngram_size": 2})");
  const std::string weights = "--set 'weights=[{\"path\": \"" + fixture + "/model.safetensors\"}]'";
  const auto r = run_msmedcap("forward -c " + data_path("tiny_msmedcap_opt.json") + " " + weights + " --inputs " +
                              fixture + "/reference.safetensors --output " + dir.file("out.safetensors") +
                              " --generate " + dir.file("gen.json") + " --prompt-tokens 3");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto out = io::TensorStore::open(dir.file("out.safetensors"));
  const auto ref = io::TensorStore::open(fixture + "/reference.safetensors");
  for (const char* key : {"sam_image_embeddings", "sam_qformer_last_hidden_state", "sam_language_projection",
                          "language_projection", "logits"}) {
    EXPECT_LT(max_error(out.view(key), ref.view(key)), 1e-4) << key;
  }
  EXPECT_TRUE(at::equal(out.view("sequences"), ref.view("gen_greedy_rep")));
}

TEST(ForwardCli, SamDirectoryGivesEncoderOutputs) {
  TempDir dir;
  const std::string fixture = fixture_path("tiny_sam");
  const auto r = run_msmedcap("forward --hf " + fixture + " --inputs " + fixture + "/reference.safetensors --output " +
                              dir.file("out.safetensors"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto out = io::TensorStore::open(dir.file("out.safetensors"));
  const auto ref = io::TensorStore::open(fixture + "/reference.safetensors");
  EXPECT_LT(max_error(out.view("vision_last_hidden_state"), ref.view("vision_last_hidden_state")), 1e-4);
  EXPECT_LT(max_error(out.view("vision_hidden_state_1"), ref.view("vision_hidden_state_1")), 1e-4);
}

TEST(ForwardCli, ImagesOnlyGiveFeatures) {
  TempDir dir;
  const std::string fixture = fixture_path("tiny_blip2_opt");
  io::save_safetensors(
      dir.file("in.safetensors"),
      {{"pixel_values", io::TensorStore::open(fixture + "/reference.safetensors").view("pixel_values")}});
  const auto r = run_msmedcap("forward --hf " + fixture + " --inputs " + dir.file("in.safetensors") + " --output " +
                              dir.file("out.safetensors"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto out = io::TensorStore::open(dir.file("out.safetensors"));
  EXPECT_TRUE(out.contains("language_projection"));
  EXPECT_FALSE(out.contains("logits"));
}

TEST(ForwardCli, GenerateRunsBeamSearchAsCaptionDoes) {
  // --generate with num_beams 3 must give HF's beam-search tokens, not greedy ones.
  TempDir dir;
  const std::string fixture = fixture_path("tiny_blip2_opt");
  const auto ref = io::TensorStore::open(fixture + "/reference.safetensors");
  const auto beam = ref.view("gen_beam3_prompt").slice(1, 1);
  ASSERT_FALSE(at::equal(beam, ref.view("gen_greedy_prompt").slice(1, 1)));  // the two differ on this fixture
  write_text(dir.file("gen.json"), R"({"max_new_tokens": 16, "num_beams": 3, "eos_token_id": 2, "pad_token_id": 1})");
  const auto r =
      run_msmedcap("forward --hf " + fixture + " --inputs " + fixture + "/reference.safetensors --output " +
                   dir.file("out.safetensors") + " --generate " + dir.file("gen.json") + " --prompt-tokens 3");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(at::equal(io::TensorStore::open(dir.file("out.safetensors")).view("sequences"), beam));
}

TEST(ForwardCli, TodaysHubConfigWithImagePlaceholdersEqualsHf) {
  // tiny_blip2_opt with image_token_index set, as today's Salesforce/blip2-opt-2.7b config.json
  // has it; the golden is HF transformers' own forward and generate on placeholder input_ids
  // (tests/golden/make_image_token_golden.py).
  TempDir dir;
  const std::string fixture = fixture_path("tiny_blip2_opt");
  const std::string golden = data_path("image_token_golden/tiny_blip2_opt.safetensors");
  const auto want = io::TensorStore::open(golden);
  std::string index;
  for (const auto& [key, value] : want.metadata()) {
    if (key == "image_token_index") index = value;
  }
  ASSERT_FALSE(index.empty());
  auto hf = config::Json::parse(testing::read_text(fixture + "/config.json"));
  hf["image_token_index"] = std::stoll(index);
  std::filesystem::create_directories(dir.file("hub"));
  write_text(dir.file("hub/config.json"), hf.dump());
  std::filesystem::copy_file(fixture + "/model.safetensors", dir.file("hub/model.safetensors"));
  write_text(dir.file("gen.json"), R"({"max_new_tokens": 16, "eos_token_id": 2, "pad_token_id": 1})");
  // The golden's prompt: the placeholders and the first 3 text tokens.
  const int64_t prompt =
      (want.view("input_ids")[0] == static_cast<int64_t>(std::stoll(index))).sum().item<int64_t>() + 3;
  const auto r = run_msmedcap("forward --hf " + dir.file("hub") + " --inputs " + golden + " --output " +
                              dir.file("out.safetensors") + " --generate " + dir.file("gen.json") +
                              " --prompt-tokens " + std::to_string(prompt));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto out = io::TensorStore::open(dir.file("out.safetensors"));
  EXPECT_EQ(out.view("logits").sizes(), want.view("logits").sizes());  // T positions, not P + T
  EXPECT_LT(max_error(out.view("logits"), want.view("logits")), 1e-4);
  EXPECT_LT(max_error(out.view("loss"), want.view("loss")), 1e-5);
  EXPECT_TRUE(at::equal(out.view("sequences"), want.view("generated").slice(1, 1)));
}

TEST(ForwardCli, DtypeBf16OnCpuAndFp16RefusedThere) {
  TempDir dir;
  const std::string fixture = fixture_path("tiny_blip2_opt");
  const std::string base = "forward --hf " + fixture + " --inputs " + fixture + "/reference.safetensors --output ";
  const auto r = run_msmedcap(base + dir.file("bf16.safetensors") + " --dtype bf16");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto out = io::TensorStore::open(dir.file("bf16.safetensors"));
  const auto ref = io::TensorStore::open(fixture + "/reference.safetensors");
  EXPECT_EQ(out.info("logits").dtype, io::DType::BF16);
  EXPECT_LT(max_error(out.view("logits"), ref.view("logits")) / ref.view("logits").abs().max().item<double>(), 0.05);
  const auto half = run_msmedcap(base + dir.file("fp16.safetensors") + " --dtype fp16");
  EXPECT_EQ(half.exit_code, 1);
  EXPECT_EQ(count_lines(half.err), 1u) << half.err;
  EXPECT_NE(half.err.find("fp16 needs a CUDA device"), std::string::npos) << half.err;
  EXPECT_FALSE(std::filesystem::exists(dir.file("fp16.safetensors")));
}

// int8 and w8a8 (CPU decoding): the decoder's weights quantised per output channel (w8a8: and
// each product's input per row), the rest float32. The logits stay within the rounding's reach
// of HF's float32 ones (int8 keeps about 2.5 significant digits per value; bf16, for comparison,
// under 3), they are float32, and the greedy tokens are the HF greedy tokens wherever the
// fixture's random model has a margin: rows are compared, and at least one of the two must agree
// in full.
TEST(ForwardCli, DtypeInt8DecodesWithInt8DecoderWeights) {
  TempDir dir;
  const std::string fixture = fixture_path("tiny_blip2_llama");
  write_text(dir.file("gen.json"), R"({"max_new_tokens": 16, "num_beams": 1, "eos_token_id": 2, "pad_token_id": 1})");
  const std::string base = "forward --hf " + fixture + " --inputs " + fixture + "/reference.safetensors --generate " +
                           dir.file("gen.json") + " --prompt-tokens 3 --output ";
  const auto ref = io::TensorStore::open(fixture + "/reference.safetensors");
  for (const std::string dtype : {"int8", "w8a8"}) {
    const auto r = run_msmedcap(base + dir.file(dtype + ".safetensors") + " --dtype " + dtype);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const auto out = io::TensorStore::open(dir.file(dtype + ".safetensors"));
    EXPECT_EQ(out.info("logits").dtype, io::DType::F32);
    const double rel =
        max_error(out.view("logits"), ref.view("logits")) / ref.view("logits").abs().max().item<double>();
    EXPECT_LT(rel, 0.05) << dtype;
    EXPECT_GT(rel, 1e-4) << dtype;  // the weights are really int8: float32 products would be within 1e-6
    // The encoders are not quantised: their outputs are HF's float32 ones.
    EXPECT_LT(max_error(out.view("qformer_last_hidden_state"), ref.view("qformer_last_hidden_state")), 1e-4);
    const auto rows_equal = out.view("sequences").eq(ref.view("gen_greedy_prompt").slice(1, 1)).all(1);
    EXPECT_GE(rows_equal.sum().item<int64_t>(), 1) << dtype << " " << out.view("sequences");
    // Refused where it would change nothing or cannot run, by name, before anything is written.
    const auto cuda = run_msmedcap(base + dir.file("cuda.safetensors") + " --dtype " + dtype + " --device cuda");
    EXPECT_EQ(cuda.exit_code, 1);
    EXPECT_EQ(count_lines(cuda.err), 1u) << cuda.err;
    EXPECT_NE(cuda.err.find(dtype + " is a CPU decoding format"), std::string::npos) << cuda.err;
    EXPECT_FALSE(std::filesystem::exists(dir.file("cuda.safetensors")));
  }
}

TEST(ForwardCli, BadInputsExitOneWithOneLine) {
  TempDir dir;
  const std::string fixture = fixture_path("tiny_blip2_opt");
  io::save_safetensors(dir.file("bad.safetensors"), {{"pixel_values", at::zeros({1, 3, 30, 32})}});
  const auto r = run_msmedcap("forward --hf " + fixture + " --inputs " + dir.file("bad.safetensors") + " --output " +
                              dir.file("out.safetensors"));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(count_lines(r.err), 1u) << r.err;
  EXPECT_NE(r.err.find("not a multiple of the patch size"), std::string::npos) << r.err;
  EXPECT_FALSE(std::filesystem::exists(dir.file("out.safetensors")));
  const auto missing = run_msmedcap("forward --hf " + dir.path() + " --inputs " + dir.file("bad.safetensors") +
                                    " --output " + dir.file("out.safetensors"));
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_NE(missing.err.find("config.json: no such file"), std::string::npos) << missing.err;
}

}  // namespace
}  // namespace msmedcap

namespace msmedcap {
namespace {

TEST(ForwardCli, ClipVisionDirectory) {
  msmedcap::testing::TempDir dir;
  const std::string model = msmedcap::testing::data_path("tiny_clip_vision");
  const auto r = msmedcap::testing::run_msmedcap("forward --hf " + model + " --inputs " + model +
                                                 "/reference.safetensors --output " + dir.file("out.safetensors"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto out = io::TensorStore::open(dir.file("out.safetensors"));
  const auto ref = io::TensorStore::open(model + "/reference.safetensors");
  for (const char* key : {"vision_embeddings_output", "vision_last_hidden_state", "vision_pooler_output"}) {
    EXPECT_LT(max_error(out.view(key), ref.view(key)), 1e-4) << key;
  }
}

}  // namespace
}  // namespace msmedcap

namespace msmedcap {
namespace {

// A standalone HF causal-LM directory: the fixture's OPT decoder saved as HF's OPTForCausalLM
// (un-prefixed "decoder." names, as some hub files have). Its logits on token ids must equal
// the composite's decoder fed the same token embeddings (no visual prefix): the tiny BLIP-2
// model with zero query tokens is not available, so this compares the two loading paths.
TEST(ForwardCli, StandaloneCausalLmDirectory) {
  msmedcap::testing::TempDir dir;
  const std::string fixture = fixture_path("tiny_blip2_opt");
  io::StateDict lm;
  for (const auto& [name, t] : io::TensorStore::open(fixture + "/model.safetensors").load_all()) {
    const std::string p = "language_model.model.";
    if (name.rfind(p, 0) == 0) lm[name.substr(p.size())] = t;
  }
  const std::string lm_dir = dir.file("opt");
  std::filesystem::create_directory(lm_dir);
  io::save_safetensors(lm_dir + "/model.safetensors", lm);
  auto hf = config::Json::parse(msmedcap::testing::read_text(fixture + "/config.json"))["text_config"];
  write_text(lm_dir + "/config.json", hf.dump());
  const auto ref = io::TensorStore::open(fixture + "/reference.safetensors");
  io::save_safetensors(dir.file("in.safetensors"), {{"input_ids", ref.view("input_ids")},
                                                    {"attention_mask", ref.view("attention_mask")},
                                                    {"labels", ref.view("labels")}});
  write_text(dir.file("gen.json"), R"({"max_new_tokens": 5, "eos_token_id": null})");
  const auto r =
      run_msmedcap("forward --hf " + lm_dir + " --inputs " + dir.file("in.safetensors") + " --output " +
                   dir.file("out.safetensors") + " --generate " + dir.file("gen.json") + " --prompt-tokens 3");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto out = io::TensorStore::open(dir.file("out.safetensors"));
  EXPECT_EQ(out.view("logits").sizes(), (at::IntArrayRef{2, 7, 1000}));
  EXPECT_EQ(out.view("sequences").sizes(), (at::IntArrayRef{2, 5}));
  EXPECT_TRUE(std::isfinite(out.view("loss").item<double>()));
  // Same numbers through the composite's decoder.
  auto model = models::build_model(models::model_config_from_hf_blip2(models::read_hf_config(fixture), fixture));
  models::load_weights(*model, fixture, "", {});
  torch::NoGradGuard no_grad;
  const auto ids = ref.view("input_ids");
  const auto logits = model->decoder().forward(model->decoder().embed(ids), ref.view("attention_mask"));
  EXPECT_LT(max_error(out.view("logits"), logits), 1e-5);
}

}  // namespace
}  // namespace msmedcap
