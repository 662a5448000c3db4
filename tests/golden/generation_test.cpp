// Greedy decoding and beam search token for token equal to HF generate on the fixtures
// (reference_meta.json: every recorded greedy top-1/top-2 margin is above 1e-3, so no step may
// flip).
#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <torch/csrc/autograd/grad_mode.h>

#include "msmedcap/config/config_io.h"
#include "msmedcap/config/run_config.h"
#include "msmedcap/inference/search.h"
#include "msmedcap/io/tensor_store.h"
#include "msmedcap/models/pretrained.h"
#include "test_device.h"
#include "test_utils.h"

namespace msmedcap::inference {
namespace {

using msmedcap::testing::data_path;
using msmedcap::testing::fixture_path;

struct Case {
  const char* fixture;
  const char* reference;  // tensor in reference.safetensors
  int64_t prompt_tokens;  // leading input_ids as prompt; 0 = [bos]
  bool eos;
  double repetition_penalty;
  int64_t no_repeat_ngram_size;
  bool bos_placeholder;   // Blip2 generate prepends one bos to the returned sequences
  int64_t num_beams = 1;  // > 1: beam search, length_penalty 1, early_stopping false
};

models::MsMedCapModel load(const std::string& name) {
  const std::string dir = fixture_path(name);
  if (name == "tiny_msmedcap_opt") {
    config::RunConfig run;
    config::resolve_config(run, {{data_path("tiny_msmedcap_opt.json")}, {}});
    auto model = models::build_model(run.model);
    models::load_weights(*model, dir + "/model.safetensors", "", {});
    model->eval();  // HF generates in eval mode (no dropout)
    model->to(testing::test_device());
    return model;
  }
  auto model = models::build_model(models::model_config_from_hf_blip2(models::read_hf_config(dir), dir));
  models::load_weights(*model, dir, "", {});
  model->eval();
  model->to(testing::test_device());
  return model;
}

void check(const Case& c) {
  torch::NoGradGuard no_grad;
  auto model = load(c.fixture);
  const auto ref = io::TensorStore::open(fixture_path(std::string(c.fixture) + "/reference.safetensors"));
  const bool has_sam = ref.contains("sam_pixel_values");
  const auto dev = testing::test_device();
  const auto prefix = model
                          ->encode_images(ref.view("pixel_values").to(dev),
                                          has_sam ? ref.view("sam_pixel_values").to(dev) : at::Tensor())
                          .embeds;
  const auto& dcfg = model->config().decoder;
  const int64_t b = prefix.size(0);
  const auto prompt = (c.prompt_tokens > 0 ? ref.view("input_ids").slice(1, 0, c.prompt_tokens)
                                           : at::full({b, 1}, dcfg.bos_token_id, at::kLong))
                          .to(dev);
  const auto embeds = at::cat({prefix, model->decoder().embed(prompt)}, 1);
  const auto want_full = ref.view(c.reference);
  const auto want = c.bos_placeholder ? want_full.slice(1, 1) : want_full;
  GenerateOptions options;
  options.max_new_tokens = want.size(1);
  options.pad_token_id = dcfg.pad_token_id;
  if (c.eos) options.eos_token_id = dcfg.eos_token_id;
  options.repetition_penalty = c.repetition_penalty;
  options.no_repeat_ngram_size = c.no_repeat_ngram_size;
  options.num_beams = c.num_beams;
  const auto result = generate(model->decoder(), embeds, at::ones({b, embeds.size(1)}, at::kLong).to(dev), options);
  const auto got = result.tokens.cpu();
  // HF's sequences_scores (the chosen hypotheses' length-normalised log-probabilities), if recorded.
  const auto meta = config::read_json_file(fixture_path(std::string(c.fixture) + "/reference_meta.json"));
  const std::string key = std::string(c.reference).substr(4);  // "gen_beam3_prompt" -> "beam3_prompt"
  if (meta["generate"].contains(key) && meta["generate"][key].contains("sequences_scores")) {
    const auto want_scores = meta["generate"][key]["sequences_scores"].get<std::vector<double>>();
    for (int64_t i = 0; i < b; ++i)
      EXPECT_NEAR(result.scores[i].item<double>(), want_scores[static_cast<size_t>(i)], 1e-4);
  }
  EXPECT_TRUE(at::equal(got, want)) << c.fixture << " " << c.reference << "\n got  " << got << "\n want " << want;
}

TEST(GenerationGolden, Blip2OptGreedy) {
  check({"tiny_blip2_opt", "gen_greedy_prompt", 3, true, 1.0, 0, true});
  check({"tiny_blip2_opt", "gen_greedy_noprompt", 0, true, 1.0, 0, true});
  check({"tiny_blip2_opt", "gen_greedy_prompt_noeos", 3, false, 1.0, 0, true});
}

TEST(GenerationGolden, Blip2LlamaGreedy) {
  check({"tiny_blip2_llama", "gen_greedy_prompt", 3, true, 1.0, 0, true});
  check({"tiny_blip2_llama", "gen_greedy_noprompt", 0, true, 1.0, 0, true});
  check({"tiny_blip2_llama", "gen_greedy_prompt_noeos", 3, false, 1.0, 0, true});
}

TEST(GenerationGolden, Blip2Gpt2Greedy) {
  check({"tiny_blip2_gpt2", "gen_greedy_prompt", 3, true, 1.0, 0, true});
  check({"tiny_blip2_gpt2", "gen_greedy_noprompt", 0, true, 1.0, 0, true});
  check({"tiny_blip2_gpt2", "gen_greedy_prompt_noeos", 3, false, 1.0, 0, true});
}

TEST(GenerationGolden, MsMedCapGreedyAndRepetitionControls) {
  check({"tiny_msmedcap_opt", "gen_greedy", 3, true, 1.0, 0, false});
  check({"tiny_msmedcap_opt", "gen_greedy_rep", 3, true, 1.5, 2, false});
}

TEST(GenerationGolden, BeamSearchOfThree) {
  check({"tiny_blip2_opt", "gen_beam3_prompt", 3, true, 1.0, 0, true, 3});
  check({"tiny_blip2_llama", "gen_beam3_prompt", 3, true, 1.0, 0, true, 3});
  check({"tiny_blip2_gpt2", "gen_beam3_prompt", 3, true, 1.0, 0, true, 3});
  check({"tiny_msmedcap_opt", "gen_beam3", 3, true, 1.0, 0, false, 3});
}

}  // namespace
}  // namespace msmedcap::inference
