// Model invariants on tiny random configs: cached decoding equals uncached, a left-padded batch
// gives each row's own logits, greedy with the cache equals a naive uncached argmax loop, and
// the composite wires its branches as configured.
#include <ATen/ATen.h>
#include <cmath>
#include <gtest/gtest.h>
#include <torch/csrc/autograd/grad_mode.h>

#include "msmedcap/core/check.h"
#include "msmedcap/inference/search.h"
#include "msmedcap/io/state_dict.h"
#include "msmedcap/models/decoder.h"
#include "msmedcap/models/msmedcap.h"
#include "tiny_models.h"

namespace msmedcap::models {
namespace {

using testing::tiny_decoder;

class DecoderInvariants : public ::testing::TestWithParam<std::string> {};

TEST_P(DecoderInvariants, CachedStepsEqualOneFullPass) {
  torch::NoGradGuard no_grad;
  at::manual_seed(0);
  auto lm = build_decoder(tiny_decoder(GetParam()));
  const auto embeds = at::randn({2, 9, lm->input_width()});
  const auto mask = at::ones({2, 9}, at::kLong);
  const auto full = lm->forward(embeds, mask);
  KvCache cache;
  auto first = lm->forward(embeds.slice(1, 0, 5), mask.slice(1, 0, 5), {}, &cache);
  EXPECT_EQ(cache.length(), 5);
  std::vector<at::Tensor> pieces = {first};
  for (int64_t t = 5; t < 9; ++t) {
    const auto pos = at::full({2, 1}, t, at::kLong);
    pieces.push_back(lm->forward(embeds.slice(1, t, t + 1), mask.slice(1, 0, t + 1),
                                 lm->positions_from_mask() ? at::Tensor() : pos, &cache));
  }
  EXPECT_TRUE(at::allclose(at::cat(pieces, 1), full, 1e-4, 1e-5)) << GetParam();
}

TEST_P(DecoderInvariants, LogitsOfTheLastPositionsAreTheFullPassTail) {
  torch::NoGradGuard no_grad;
  at::manual_seed(3);
  auto lm = build_decoder(tiny_decoder(GetParam()));
  const auto embeds = at::randn({2, 7, lm->input_width()});
  const auto mask = at::ones({2, 7}, at::kLong);
  const auto full = lm->forward(embeds, mask);
  const auto tail = lm->forward(embeds, mask, {}, nullptr, 3);
  ASSERT_EQ(tail.sizes(), (at::IntArrayRef{2, 3, full.size(2)}));
  EXPECT_TRUE(at::allclose(tail, full.slice(1, 4), 1e-5, 1e-6)) << GetParam();
  EXPECT_TRUE(at::allclose(lm->forward(embeds, mask, {}, nullptr, 7), full, 1e-5, 1e-6));
}

TEST_P(DecoderInvariants, CachedStepsKeepGradients) {
  // Under autograd the cache concatenates (no in-place write over a tensor saved for backward):
  // backward through a cached pass gives the full pass's gradients.
  at::manual_seed(4);
  auto lm = build_decoder(tiny_decoder(GetParam()));
  const auto embeds = at::randn({1, 4, lm->input_width()}).requires_grad_(true);
  const auto mask = at::ones({1, 4}, at::kLong);
  lm->forward(embeds, mask).sum().backward();
  const auto expected = embeds.grad().clone();
  embeds.mutable_grad().zero_();
  KvCache cache;
  auto a = lm->forward(embeds.slice(1, 0, 3), mask.slice(1, 0, 3), {}, &cache);
  auto b = lm->forward(embeds.slice(1, 3, 4), mask,
                       lm->positions_from_mask() ? at::Tensor() : at::full({1, 1}, 3, at::kLong), &cache);
  (a.sum() + b.sum()).backward();
  EXPECT_TRUE(at::allclose(embeds.grad(), expected, 1e-4, 1e-5)) << GetParam();
}

TEST_P(DecoderInvariants, LeftPaddedRowMatchesTheRowAlone) {
  torch::NoGradGuard no_grad;
  at::manual_seed(1);
  auto lm = build_decoder(tiny_decoder(GetParam()));
  const auto row = at::randn({1, 5, lm->input_width()});
  const auto alone = lm->forward(row, at::ones({1, 5}, at::kLong));
  // The same row behind 3 padding positions, next to a full-length row.
  const auto padded = at::cat({at::randn({1, 3, lm->input_width()}), row}, 1);
  const auto batch = at::cat({padded, at::randn({1, 8, lm->input_width()})}, 0);
  auto mask = at::ones({2, 8}, at::kLong);
  mask[0].slice(0, 0, 3).fill_(0);
  at::Tensor positions;
  if (!lm->positions_from_mask()) {
    positions = (mask.cumsum(1) - 1).masked_fill(mask == 0, 1);
  }
  const auto logits = lm->forward(batch, mask, positions);
  EXPECT_TRUE(at::allclose(logits[0].slice(0, 3), alone[0], 1e-4, 1e-5)) << GetParam();
}

TEST_P(DecoderInvariants, GreedyWithCacheEqualsNaiveArgmax) {
  torch::NoGradGuard no_grad;
  at::manual_seed(2);
  auto lm = build_decoder(tiny_decoder(GetParam()));
  const auto prefix = at::randn({2, 4, lm->input_width()});
  inference::GenerateOptions options;
  options.max_new_tokens = 6;
  options.eos_token_id.reset();
  const auto tokens = inference::greedy_search(*lm, prefix, {}, options);
  ASSERT_EQ(tokens.sizes(), (at::IntArrayRef{2, 6}));
  auto embeds = prefix;
  for (int64_t step = 0; step < 6; ++step) {
    const auto logits = lm->forward(embeds, at::ones({2, embeds.size(1)}, at::kLong));
    const auto next = logits.select(1, logits.size(1) - 1).argmax(-1);
    EXPECT_TRUE(at::equal(next, tokens.select(1, step))) << GetParam() << " step " << step;
    embeds = at::cat({embeds, lm->embed(next.unsqueeze(1))}, 1);
  }
}

INSTANTIATE_TEST_SUITE_P(AllFamilies, DecoderInvariants, ::testing::Values("opt", "llama", "gpt2"));

/// A seeded tiny decoder of `arch`, a random prefix [b, p, E], and options for `max_new` tokens
/// without EOS.
struct GenerationSetup {
  std::shared_ptr<DecoderLM> lm;
  at::Tensor prefix;
  inference::GenerateOptions options;
};
GenerationSetup generation_setup(const std::string& arch, uint64_t seed, int64_t b, int64_t p, int64_t max_new) {
  at::manual_seed(seed);
  GenerationSetup g;
  g.lm = build_decoder(tiny_decoder(arch));
  g.prefix = at::randn({b, p, g.lm->input_width()});
  g.options.max_new_tokens = max_new;
  g.options.eos_token_id.reset();
  return g;
}

TEST(Generation, EosFinishesARowAndPadsIt) {
  torch::NoGradGuard no_grad;
  auto [lm, prefix, options] = generation_setup("opt", 3, 2, 3, 5);
  const auto free_run = inference::greedy_search(*lm, prefix, {}, options);
  // Make the first token of row 0 the EOS: that row then emits only padding.
  options.eos_token_id = free_run[0][0].item<int64_t>();
  options.pad_token_id = 49;
  const auto stopped = inference::greedy_search(*lm, prefix, {}, options);
  EXPECT_EQ(stopped[0][0].item<int64_t>(), *options.eos_token_id);
  EXPECT_TRUE((stopped[0].slice(0, 1) == 49).all().item<bool>());
}

TEST(Generation, RepetitionPenaltyAndNoRepeatNgram) {
  inference::GenerateOptions options;
  options.repetition_penalty = 2.0;
  options.no_repeat_ngram_size = 2;
  auto scores = at::tensor({1.0f, -1.0f, 4.0f, 0.5f}).unsqueeze(0);
  const auto generated = at::tensor(std::vector<int64_t>{2, 1, 2}).unsqueeze(0);  // "2 1 2": bigram (2, 1) seen
  inference::process_logits(scores, generated, options);
  EXPECT_FLOAT_EQ(scores[0][0].item<float>(), 1.0f);    // not generated: unchanged
  EXPECT_TRUE(std::isinf(scores[0][1].item<float>()));  // would repeat "2 1"
  EXPECT_FLOAT_EQ(scores[0][2].item<float>(), 2.0f);    // positive: divided
  EXPECT_FLOAT_EQ(scores[0][3].item<float>(), 0.5f);
}

TEST(Generation, IdsFromTheSuppressedRangeAreNeverGenerated) {
  torch::NoGradGuard no_grad;
  auto [lm, prefix, options] = generation_setup("opt", 5, 3, 4, 6);
  for (int64_t beams : {1, 3}) {
    options.num_beams = beams;
    options.suppress_from = 0;
    ASSERT_GE(inference::generate(*lm, prefix, {}, options).tokens.max().item<int64_t>(), 7) << beams;
    options.suppress_from = 7;
    EXPECT_LT(inference::generate(*lm, prefix, {}, options).tokens.max().item<int64_t>(), 7) << beams;
  }
}

TEST(Generation, SettingsFromJsonRejectUnknownKeys) {
  const auto o = inference::GenerateOptions::from_json(
      config::Json::parse(R"({"max_new_tokens": 4, "eos_token_id": null, "repetition_penalty": 1.5})"), "g.json");
  EXPECT_EQ(o.max_new_tokens, 4);
  EXPECT_FALSE(o.eos_token_id.has_value());
  const auto beam = inference::GenerateOptions::from_json(
      config::Json::parse(R"({"num_beams": 5, "length_penalty": 1.2, "early_stopping": "never"})"), "g.json");
  EXPECT_EQ(beam.early_stopping, 2);
  EXPECT_THROW(
      inference::GenerateOptions::from_json(config::Json::parse(R"({"num_beams": 2, "do_sample": true})"), "g"), Error);
  EXPECT_THROW(inference::GenerateOptions::from_json(config::Json::parse(R"({"top_p": 0})"), "g"), Error);
  try {
    inference::GenerateOptions::from_json(config::Json::parse(R"({"max_new_token": 4})"), "g.json");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("did you mean 'max_new_tokens'?"), std::string::npos) << e.what();
  }
}

TEST(Generation, BeamOfOneIsGreedyAndBeamsFindLikelierSequences) {
  torch::NoGradGuard no_grad;
  auto [lm, prefix, options] = generation_setup("opt", 5, 3, 4, 6);
  const auto greedy = inference::generate(*lm, prefix, {}, options);
  EXPECT_TRUE(at::equal(inference::greedy_search(*lm, prefix, {}, options), greedy.tokens));
  options.num_beams = 1;
  EXPECT_TRUE(at::equal(inference::beam_search(*lm, prefix, {}, options).tokens, greedy.tokens));
  // Without EOS and with length_penalty 1, a beam's score is its mean log-probability over the
  // fixed length: more beams can only find a likelier sequence than greedy's.
  options.num_beams = 4;
  const auto beam = inference::generate(*lm, prefix, {}, options);
  for (int64_t b = 0; b < 3; ++b) {
    EXPECT_GE(beam.scores[b].item<double>() + 1e-5, greedy.scores[b].item<double>() / 6) << b;
  }
}

TEST(Generation, SamplingIsSeededAndTopKOneIsGreedy) {
  torch::NoGradGuard no_grad;
  auto [lm, prefix, options] = generation_setup("llama", 6, 2, 3, 8);
  const auto greedy = inference::generate(*lm, prefix, {}, options).tokens;
  options.do_sample = true;
  options.top_k = 1;
  EXPECT_TRUE(at::equal(inference::generate(*lm, prefix, {}, options).tokens, greedy));
  options.top_k = 0;
  options.temperature = 5.0;  // nearly uniform: sampling leaves the greedy path
  options.seed = 11;
  const auto a = inference::generate(*lm, prefix, {}, options).tokens;
  EXPECT_TRUE(at::equal(a, inference::generate(*lm, prefix, {}, options).tokens));
  EXPECT_FALSE(at::equal(a, greedy));
  options.seed = 12;
  EXPECT_FALSE(at::equal(a, inference::generate(*lm, prefix, {}, options).tokens));
  // top_p keeps the smallest set whose probability reaches p: a tiny p is greedy again.
  options.temperature = 1.0;
  options.top_p = 1e-6;
  EXPECT_TRUE(at::equal(inference::generate(*lm, prefix, {}, options).tokens, greedy));
}

TEST(Generation, MinNewTokensHoldsBackEos) {
  torch::NoGradGuard no_grad;
  auto [lm, prefix, options] = generation_setup("opt", 3, 2, 3, 5);
  options.eos_token_id = inference::greedy_search(*lm, prefix, {}, options)[0][0].item<int64_t>();
  options.min_new_tokens = 3;
  for (int64_t beams : {1, 3}) {
    options.num_beams = beams;
    const auto out = inference::generate(*lm, prefix, {}, options).tokens;
    for (int64_t t = 0; t < 3; ++t) EXPECT_NE(out[0][t].item<int64_t>(), *options.eos_token_id) << beams << " " << t;
  }
}

TEST(KvCache, InPlaceBuffersMatchConcatenation) {
  torch::NoGradGuard no_grad;
  at::manual_seed(5);
  for (int64_t reserve : {0, 4, 32}) {  // grown by doubling, grown past a short reservation, reserved
    KvCache cache;
    cache.reserve(reserve);
    at::Tensor keys = at::randn({2, 3, 5, 4}), values = at::randn({2, 3, 5, 4});
    auto [k, v] = cache.append(1, keys, values);  // layer 1 first: layers may come in any order
    cache.append(0, keys, values);
    for (int64_t t = 0; t < 6; ++t) {
      const auto nk = at::randn({2, 3, 1, 4}), nv = at::randn({2, 3, 1, 4});
      keys = at::cat({keys, nk}, 2);
      values = at::cat({values, nv}, 2);
      cache.append(0, nk, nv);
      std::tie(k, v) = cache.append(1, nk, nv);
      EXPECT_TRUE(at::equal(k, keys) && at::equal(v, values)) << reserve << " " << t;
    }
    EXPECT_EQ(cache.length(), 11);
    cache.select(at::tensor({1, 0}, at::kLong));
    cache.repeat_interleave(2);
    const auto nk = at::randn({4, 3, 1, 4});
    std::tie(k, v) = cache.append(1, nk, nk);
    const auto order = at::tensor({1, 1, 0, 0}, at::kLong);
    EXPECT_TRUE(at::equal(k, at::cat({keys.index_select(0, order), nk}, 2))) << reserve;
    EXPECT_TRUE(at::equal(v, at::cat({values.index_select(0, order), nk}, 2))) << reserve;
  }
}

config::ModelConfig tiny_composite() {
  config::ModelConfig m;
  m.vision = testing::model_config({{"vision",
                                     {{"hidden_size", 32},
                                      {"intermediate_size", 64},
                                      {"num_hidden_layers", 1},
                                      {"num_attention_heads", 4},
                                      {"image_size", 16},
                                      {"patch_size", 8}}}})
                 .vision;
  m.qformer.hidden_size = 32;
  m.qformer.intermediate_size = 64;
  m.qformer.num_hidden_layers = 2;
  m.qformer.num_attention_heads = 4;
  m.qformer.encoder_hidden_size = 32;
  m.qformer.num_query_tokens = 4;
  m.sam.hidden_size = 32;
  m.sam.num_hidden_layers = 2;
  m.sam.num_attention_heads = 4;
  m.sam.mlp_dim = 64;
  m.sam.image_size = 32;
  m.sam.patch_size = 8;
  m.sam.window_size = 3;
  m.sam.global_attn_indexes = {1};
  m.sam.output_channels = 8;
  m.sam_qformer = m.qformer;
  m.sam_qformer.encoder_hidden_size = 16;  // channels mode: h*w = 4*4 features per channel
  m.sam_qformer.num_query_tokens = 3;
  m.decoder = tiny_decoder("opt");
  return m;
}

TEST(Composite, PrefixOrderAndBranchSwitches) {
  torch::NoGradGuard no_grad;
  auto cfg = tiny_composite();
  MsMedCapModel both(cfg);
  const auto pixels = at::randn({2, 3, 16, 16});
  const auto sam_pixels = at::randn({2, 3, 32, 32});
  const auto prefix = both->encode_images(pixels, sam_pixels);
  EXPECT_EQ(prefix.embeds.sizes(), (at::IntArrayRef{2, 4 + 3, 32}));
  EXPECT_TRUE(at::equal(prefix.embeds.slice(1, 0, 4), prefix.parts.language_projection));
  EXPECT_TRUE(at::equal(prefix.embeds.slice(1, 4), prefix.parts.sam_language_projection));
  EXPECT_EQ(prefix.parts.sam_image_embeddings.sizes(), (at::IntArrayRef{2, 8, 4, 4}));

  cfg.use_sam = false;
  MsMedCapModel clip_only(cfg);
  EXPECT_EQ(clip_only->encode_images(pixels, {}).embeds.size(1), 4);
  for (const auto& item : io::module_state_dict(*clip_only)) {
    EXPECT_EQ(item.first.rfind("sam_", 0), std::string::npos) << item.first;
  }
  cfg.use_sam = true;
  cfg.use_clip = false;
  cfg.sam_tokens = "spatial";
  cfg.sam_qformer.encoder_hidden_size = 8;  // spatial mode: 16 tokens of C = 8 features
  MsMedCapModel sam_only(cfg);
  EXPECT_EQ(sam_only->encode_images({}, sam_pixels).embeds.size(1), 3);
}

TEST(Composite, SpatialSamTokensSeeWhereTheyAreOnlyWithSinePositions) {
  torch::NoGradGuard no_grad;
  auto cfg = tiny_composite();
  cfg.use_clip = false;
  cfg.sam_tokens = "spatial";
  cfg.sam_qformer.encoder_hidden_size = 8;  // 16 tokens of C = 8 features
  at::manual_seed(5);
  ImageInputs image, mirrored;
  image.sam_embeddings = at::randn({1, 8, 4, 4});
  mirrored.sam_embeddings = image.sam_embeddings.flip({3});  // the grid mirrored left-right
  for (const std::string positions : {"none", "sine"}) {
    cfg.sam_positions = positions;
    at::manual_seed(6);
    MsMedCapModel model(cfg);
    model->eval();
    // Weights large enough for the attention to pick tokens (at the init's scale it is nearly
    // uniform, and a uniform mean over the grid forgets positions either way).
    for (auto& p : model->parameters()) p.normal_(0, 0.5);
    const auto a = model->encode(image).embeds, b = model->encode(mirrored).embeds;
    if (positions == "none") {
      EXPECT_TRUE(at::allclose(a, b, 1e-4, 1e-5));  // cross-attention is blind to the tokens' order
    } else {
      EXPECT_GT((a - b).abs().max().item<double>(), 1e-3);
    }
  }
  // The code: [h*w, C] row-major, every cell its own; the lowest frequency's cosine (channel
  // C/4) is positive on the left half of the grid and negative on the right.
  const auto pe = grid_sine_positions(4, 6, 8);
  ASSERT_EQ(pe.sizes(), (at::IntArrayRef{24, 8}));
  EXPECT_GT(at::cdist(pe, pe).add(at::eye(24) * 10).min().item<double>(), 0.05);
  for (int64_t y = 0; y < 4; ++y)
    for (int64_t x = 0; x < 6; ++x) EXPECT_EQ(pe[y * 6 + x][2].item<float>() > 0, x < 3) << y << "," << x;
  EXPECT_NEAR(pe[0][0].item<float>(), std::sin(M_PI * 0.5 / 6), 1e-6);
  // Only with spatial tokens, and a width the code fills.
  cfg.sam_tokens = "channels";
  cfg.sam_qformer.encoder_hidden_size = 16;
  EXPECT_THROW(cfg.validate(), Error);
  cfg.sam_positions = "learned";
  EXPECT_THROW(cfg.validate(), Error);
}

TEST(Composite, ForwardLossIgnoresPaddingLabels) {
  torch::NoGradGuard no_grad;
  at::manual_seed(4);
  MsMedCapModel model(tiny_composite());
  model->eval();  // two forwards compared: no dropout
  const auto pixels = at::randn({1, 3, 16, 16});
  const auto sam_pixels = at::randn({1, 3, 32, 32});
  const auto ids = at::tensor(std::vector<int64_t>{2, 7, 9, 11}).unsqueeze(0);
  const auto out = model->forward(pixels, sam_pixels, ids, at::ones_like(ids), ids);
  EXPECT_EQ(out.logits.sizes(), (at::IntArrayRef{1, 7 + 4, 50}));
  // Loss by hand: next-token cross entropy over the text positions.
  const auto logp = at::log_softmax(out.logits[0].slice(0, 7, 10), -1);
  const double expected = -(logp[0][7] + logp[1][9] + logp[2][11]).item<double>() / 3;
  EXPECT_NEAR(out.loss.item<double>(), expected, 1e-5);
  auto labels = ids.clone();
  labels[0][3] = -100;
  const auto partial = model->forward(pixels, sam_pixels, ids, at::ones_like(ids), labels);
  EXPECT_NEAR(partial.loss.item<double>(), -(logp[0][7] + logp[1][9]).item<double>() / 2, 1e-5);
}

TEST(Composite, BadShapesGiveClearErrors) {
  MsMedCapModel model(tiny_composite());
  EXPECT_THROW(model->encode_images(at::randn({1, 3, 15, 16}), at::randn({1, 3, 32, 32})), Error);
  EXPECT_THROW(model->encode_images(at::randn({1, 3, 16, 16}), at::randn({1, 3, 16, 16})), Error);
  auto cfg = tiny_composite();
  cfg.decoder.num_attention_heads = 5;
  EXPECT_THROW(MsMedCapModel{cfg}, Error);
}

TEST(Composite, ClipTypeEncoderFeedsItsNormedTokensToTheQFormer) {
  torch::NoGradGuard no_grad;
  auto cfg = tiny_composite();
  cfg.vision.type = "clip";
  cfg.vision.layer_norm_eps = 1e-5;
  cfg.use_sam = false;
  MsMedCapModel model(cfg);
  model->eval();
  const auto sd = io::module_state_dict(*model);
  EXPECT_TRUE(sd.count("vision_model.pre_layrnorm.weight"));
  EXPECT_TRUE(sd.count("vision_model.encoder.layers.0.self_attn.q_proj.weight"));
  EXPECT_TRUE(sd.count("vision_model.embeddings.position_embedding.weight"));
  EXPECT_FALSE(sd.count("vision_model.embeddings.patch_embedding.bias"));
  const auto pixels = at::randn({1, 3, 16, 16});
  const auto prefix = model->encode_images(pixels, {});
  const auto vision = model->vision_model(pixels);
  EXPECT_TRUE(at::allclose(vision.features, model->vision_model->post_layernorm(vision.last_hidden_state)));
  EXPECT_TRUE(
      at::allclose(prefix.parts.qformer_last_hidden_state, model->qformer(model->query_tokens, vision.features)));
}

TEST(Vision, PositionEmbeddingsInterpolateForOtherSizes) {
  torch::NoGradGuard no_grad;
  MsMedCapModel model(tiny_composite());
  const auto out = model->vision_model(at::randn({1, 3, 32, 32}));
  EXPECT_EQ(out.last_hidden_state.sizes(), (at::IntArrayRef{1, 1 + 16, 32}));
}

TEST(Vision, GradientCheckpointingGivesTheSameGradients) {
  MsMedCapModel model(tiny_composite());
  auto& vit = model->vision_model;
  vit->train();
  const auto pixels = at::randn({2, 3, 16, 16});
  std::vector<at::Tensor> grads[2];
  for (int pass = 0; pass < 2; ++pass) {
    vit->encoder->gradient_checkpointing = pass == 1;
    vit->zero_grad();
    vit(pixels).features.pow(2).sum().backward();
    for (const auto& p : vit->parameters()) grads[pass].push_back(p.grad().clone());
  }
  ASSERT_EQ(grads[0].size(), grads[1].size());
  for (size_t i = 0; i < grads[0].size(); ++i) {
    EXPECT_TRUE(at::allclose(grads[0][i], grads[1][i], 1e-5, 1e-6)) << i;
    EXPECT_GT(grads[0][i].abs().sum().item<double>(), 0.0) << i;
  }
}

TEST(Generation, GuidanceScaleZeroIsTheUnconditionalPrefixAndOneIsOff) {
  torch::NoGradGuard no_grad;
  auto [lm, prefix, options] = generation_setup("llama", 7, 3, 4, 6);
  const auto unconditional = at::randn_like(prefix);
  for (int64_t beams : {1, 3}) {
    options.num_beams = beams;
    options.guidance_scale = 1.0;
    const auto plain = inference::generate(*lm, prefix, {}, options);
    const auto alone = inference::generate(*lm, unconditional, {}, options);
    ASSERT_FALSE(at::equal(plain.tokens, alone.tokens)) << beams;
    // 1: off, the unconditional prefix is not run.
    EXPECT_TRUE(at::equal(inference::generate(*lm, prefix, {}, options, unconditional).tokens, plain.tokens)) << beams;
    // 0: the scores are the unconditional rows' log-probabilities, so the search is the one over
    // that prefix alone; the conditional rows' cache must follow each reordered beam.
    options.guidance_scale = 0.0;
    const auto zero = inference::generate(*lm, prefix, {}, options, unconditional);
    EXPECT_TRUE(at::equal(zero.tokens, alone.tokens)) << beams;
    EXPECT_TRUE(at::allclose(zero.scores, alone.scores, 1e-5, 1e-5)) << beams;
    // Both rows the same prefix: every scale gives the conditional log-probabilities.
    options.guidance_scale = 3.0;
    EXPECT_TRUE(at::equal(inference::generate(*lm, prefix, {}, options, prefix).tokens, plain.tokens)) << beams;
  }
}

TEST(Generation, GuidedGreedyPicksTheArgmaxOfTheGuidedLogProbabilities) {
  torch::NoGradGuard no_grad;
  auto [lm, prefix, options] = generation_setup("opt", 9, 2, 3, 5);
  const auto unconditional = at::zeros_like(prefix);
  options.guidance_scale = 2.5;
  const auto guided = inference::generate(*lm, prefix, {}, options, unconditional);
  options.guidance_scale = 1.0;
  ASSERT_FALSE(at::equal(guided.tokens, inference::generate(*lm, prefix, {}, options).tokens));
  // Recomputed without a cache: both prefixes followed by the tokens chosen so far.
  auto cond = prefix, uncond = unconditional;
  double expected_total[2] = {0, 0};
  for (int64_t step = 0; step < 5; ++step) {
    const auto mask = at::ones({2, cond.size(1)}, at::kLong);
    const auto c = lm->forward(cond, mask).select(1, cond.size(1) - 1).log_softmax(-1);
    const auto u = lm->forward(uncond, mask).select(1, uncond.size(1) - 1).log_softmax(-1);
    const auto scores = 2.5 * (c - u) + u;
    const auto next = scores.argmax(-1);
    ASSERT_TRUE(at::equal(next, guided.tokens.select(1, step))) << "step " << step;
    const auto logp = scores.log_softmax(-1).gather(1, next.unsqueeze(1)).squeeze(1);
    for (int64_t b = 0; b < 2; ++b) expected_total[b] += logp[b].item<double>();
    cond = at::cat({cond, lm->embed(next.unsqueeze(1))}, 1);
    uncond = at::cat({uncond, lm->embed(next.unsqueeze(1))}, 1);
  }
  for (int64_t b = 0; b < 2; ++b) EXPECT_NEAR(guided.scores[b].item<double>(), expected_total[b], 1e-4) << b;
}

TEST(Generation, GuidanceNeedsAnUnconditionalPrefixOfTheSameShape) {
  torch::NoGradGuard no_grad;
  auto [lm, prefix, options] = generation_setup("gpt2", 4, 2, 3, 4);
  options.guidance_scale = 2.0;
  try {
    inference::generate(*lm, prefix, {}, options);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("guidance_scale 2 needs an unconditional prefix"), std::string::npos)
        << e.what();
  }
  EXPECT_THROW(inference::generate(*lm, prefix, {}, options, prefix.slice(1, 0, 2)), Error);
  const auto hf = inference::GenerateOptions::from_json(config::Json::parse(R"({"guidance_scale": null})"), "g.json");
  EXPECT_EQ(hf.guidance_scale, 1.0);
  EXPECT_EQ(
      inference::GenerateOptions::from_json(config::Json::parse(R"({"guidance_scale": 1.5})"), "g").guidance_scale,
      1.5);
  EXPECT_THROW(inference::GenerateOptions::from_json(config::Json::parse(R"({"guidance_scale": -1})"), "g"), Error);
}

}  // namespace
}  // namespace msmedcap::models
