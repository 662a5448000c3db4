// The Q-Former's stage-1 text path: the three attention modes (unimodal text, bidirectional,
// multimodal causal with cached query keys/values), the tied ITG head, the stage-1 heads and
// their names, and LAVIS stage-1 names loading into them.
#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <torch/csrc/autograd/grad_mode.h>

#include <regex>

#include "msmedcap/core/check.h"
#include "msmedcap/io/state_dict.h"
#include "msmedcap/models/msmedcap.h"
#include "msmedcap/models/pretrained.h"
#include "msmedcap/models/qformer.h"
#include "test_utils.h"
#include "tiny_models.h"

namespace msmedcap::models {
namespace {

config::QFormerConfig tiny_qformer() {
  auto q = testing::tiny_text_qformer();
  // The attention modes are compared exactly: no dropout (tests/unit/dropout_test.cpp has it).
  q.hidden_dropout_prob = 0.0;
  q.attention_probs_dropout_prob = 0.0;
  return q;
}

struct Batch {
  at::Tensor queries, image, ids, mask;
};

Batch make_batch() {
  at::manual_seed(7);
  Batch b;
  b.queries = at::randn({2, 5, 32});
  b.image = at::randn({2, 9, 24});
  b.ids = at::randint(1, 40, {2, 6}, at::kLong);
  b.mask = at::ones({2, 6}, at::kLong);
  b.mask[1].slice(0, 4).fill_(0);  // row 1: 4 tokens + 2 padding
  return b;
}

TEST(QFormerText, ImageKeysValuesComputedOnceServeRepeatedRows) {
  // ITM's rows repeat images ([positives, hard-negative images, positives]): gathering the rows
  // of keys/values computed once per image equals projecting the repeated images, and the
  // gradients reach the image through the shared rows.
  QFormerModel q(tiny_qformer());
  const auto b = make_batch();
  const auto image = b.image.clone().requires_grad_(true);
  const auto rows = at::tensor({1, 0}, at::kLong);
  const auto queries = b.queries.repeat({3, 1, 1});
  const auto ids = b.ids.repeat({3, 1}), mask = b.mask.repeat({3, 1});
  const auto direct = q->forward_multimodal(queries, ids, mask, at::cat({image, image.index_select(0, rows), image}));
  direct.sum().backward();
  const auto direct_grad = image.grad().clone();
  image.mutable_grad().zero_();
  const auto kv = q->image_keys_values(image);
  ASSERT_EQ(kv.layers.size(), 3u);
  EXPECT_TRUE(kv.layers[0].defined() && !kv.layers[1].defined() && kv.layers[2].defined());  // cross every 2nd layer
  const auto gathered = q->forward_multimodal(queries, ids, mask, QFormerImageKv::cat({kv, kv.select(rows), kv}));
  EXPECT_TRUE(at::allclose(gathered, direct, 1e-5, 1e-6));
  gathered.sum().backward();
  EXPECT_TRUE(at::allclose(image.grad(), direct_grad, 1e-4, 1e-6));
  torch::NoGradGuard no_grad;
  EXPECT_TRUE(at::allclose(q->forward_kv(b.queries, q->image_keys_values(b.image)), q->forward(b.queries, b.image)));
  EXPECT_THROW(q->forward_kv(b.queries, QFormerImageKv{}), Error);
}

TEST(QFormerText, CachedDecodeEqualsOnePassWithTheMultimodalCausalMask) {
  torch::NoGradGuard no_grad;
  QFormerModel q(tiny_qformer());
  const auto b = make_batch();
  QFormerCache cache;
  const auto query_out = q->forward(b.queries, b.image, &cache);
  const auto decoded = q->decode_text(b.ids, b.mask, cache);
  // Reference: one pass over [queries; text]; query rows see queries only (UniLM), text rows see
  // every query and earlier non-padding text.
  const int64_t nq = 5, t = 6;
  auto keep = at::zeros({2, nq + t, nq + t});
  keep.slice(1, 0, nq).slice(2, 0, nq).fill_(1);
  keep.slice(1, nq).slice(2, 0, nq).fill_(1);
  keep.slice(1, nq).slice(2, nq).copy_(at::ones({t, t}).tril().unsqueeze(0) * b.mask.unsqueeze(1));
  const auto bias = ((1.0 - keep) * kQFormerMaskValue).unsqueeze(1);
  auto h = q->layernorm(at::cat({b.queries, q->embeddings(b.ids)}, 1));
  const auto image_kv = q->image_keys_values(b.image);
  for (size_t i = 0; i < q->encoder->layer->size(); ++i) {
    QFormerLayerCall call;
    call.num_queries = nq;
    call.mask = bias;
    call.image = image_kv.layers[i];
    h = q->encoder->layer->ptr<QFormerLayerImpl>(i)->forward(h, call);
  }
  EXPECT_TRUE(at::allclose(h.slice(1, nq), decoded, 1e-5, 1e-5));
  EXPECT_TRUE(at::allclose(h.slice(1, 0, nq), query_out, 1e-5, 1e-5));
}

TEST(QFormerText, DecodeIsCausal) {
  torch::NoGradGuard no_grad;
  QFormerModel q(tiny_qformer());
  auto b = make_batch();
  QFormerCache cache;
  q->forward(b.queries, b.image, &cache);
  const auto before = q->decode_text(b.ids, b.mask, cache);
  b.ids[0][3] = (b.ids[0][3].item<int64_t>() % 39) + 1;
  const auto after = q->decode_text(b.ids, b.mask, cache);
  EXPECT_TRUE(at::allclose(before[0].slice(0, 0, 3), after[0].slice(0, 0, 3), 1e-6, 1e-6));
  EXPECT_FALSE(at::allclose(before[0].slice(0, 3), after[0].slice(0, 3), 1e-6, 1e-6));
}

TEST(QFormerText, UnimodalTextIgnoresPaddingAndQueries) {
  torch::NoGradGuard no_grad;
  QFormerModel q(tiny_qformer());
  const auto b = make_batch();
  const auto full = q->encode_text(b.ids, b.mask);
  // Row 1 alone without its padding gives the same outputs for its real tokens.
  const auto alone = q->encode_text(b.ids[1].slice(0, 0, 4).unsqueeze(0), at::ones({1, 4}, at::kLong));
  EXPECT_TRUE(at::allclose(full[1].slice(0, 0, 4), alone[0], 1e-5, 1e-5));
}

TEST(QFormerText, BidirectionalQueriesSeeTheText) {
  torch::NoGradGuard no_grad;
  QFormerModel q(tiny_qformer());
  auto b = make_batch();
  const auto first = q->forward_multimodal(b.queries, b.ids, b.mask, b.image);
  EXPECT_EQ(first.sizes(), (at::IntArrayRef{2, 5 + 6, 32}));
  b.ids[0][5] = (b.ids[0][5].item<int64_t>() % 39) + 1;  // the last text token of row 0
  const auto second = q->forward_multimodal(b.queries, b.ids, b.mask, b.image);
  EXPECT_FALSE(at::allclose(first[0].slice(0, 0, 5), second[0].slice(0, 0, 5), 1e-6, 1e-6));
  // Row 1's padding token is invisible: changing it changes nothing of row 1's real outputs.
  b.ids[1][5] = (b.ids[1][5].item<int64_t>() % 39) + 1;
  const auto third = q->forward_multimodal(b.queries, b.ids, b.mask, b.image);
  EXPECT_TRUE(at::allclose(second[1].slice(0, 0, 9), third[1].slice(0, 0, 9), 1e-6, 1e-6));
}

TEST(QFormerText, LmHeadIsTiedToTheWordEmbeddings) {
  torch::NoGradGuard no_grad;
  QFormerModel q(tiny_qformer());
  const auto h = at::randn({2, 3, 32});
  const auto logits = q->lm_logits(h);
  ASSERT_EQ(logits.sizes(), (at::IntArrayRef{2, 3, 40}));
  q->embeddings->word_embeddings->weight.mul_(2);
  auto& p = q->cls->predictions;
  const auto transformed = p->transform(h);
  EXPECT_TRUE(
      at::allclose(q->lm_logits(h), at::matmul(transformed, q->embeddings->word_embeddings->weight.t()) + p->bias));
  EXPECT_FALSE(at::allclose(q->lm_logits(h), logits));
  for (const auto& item : q->named_parameters()) EXPECT_EQ(item.key().find("decoder"), std::string::npos);
}

TEST(QFormerText, QueryOnlyModelRejectsText) {
  auto cfg = tiny_qformer();
  cfg.text_path = false;
  QFormerModel q(cfg);
  EXPECT_THROW(q->encode_text(at::ones({1, 2}, at::kLong), at::ones({1, 2}, at::kLong)), Error);
  for (const auto& item : q->named_parameters()) {
    EXPECT_EQ(item.key().find("embeddings"), std::string::npos) << item.key();
    EXPECT_EQ(item.key().find(".intermediate."), std::string::npos) << item.key();
  }
}

config::ModelConfig stage1_model() {
  config::ModelConfig m;
  m.use_sam = false;
  m.vision = testing::model_config({{"vision",
                                     {{"hidden_size", 32},
                                      {"intermediate_size", 48},
                                      {"num_hidden_layers", 1},
                                      {"num_attention_heads", 4},
                                      {"image_size", 16},
                                      {"patch_size", 8}}}})
                 .vision;
  m.qformer = tiny_qformer();
  m.qformer.encoder_hidden_size = 32;
  m.embed_dim = 16;
  m.decoder.arch = "opt";
  m.decoder.vocab_size = 30;
  m.decoder.hidden_size = 16;
  m.decoder.num_hidden_layers = 1;
  m.decoder.num_attention_heads = 2;
  m.decoder.intermediate_size = 32;
  m.decoder.max_position_embeddings = 32;
  return m;
}

TEST(Stage1Heads, NamesAndShapes) {
  MsMedCapModel model(stage1_model());
  const auto sd = io::module_state_dict(*model);
  for (const char* name :
       {"vision_projection.weight", "text_projection.weight", "itm_head.weight", "temp",
        "qformer.embeddings.word_embeddings.weight", "qformer.embeddings.position_embeddings.weight",
        "qformer.encoder.layer.0.intermediate.dense.weight", "qformer.encoder.layer.2.output.LayerNorm.bias",
        "qformer.cls.predictions.transform.dense.weight", "qformer.cls.predictions.transform.LayerNorm.weight",
        "qformer.cls.predictions.bias"}) {
    EXPECT_TRUE(sd.count(name)) << name;
  }
  EXPECT_EQ(sd.at("vision_projection.weight").sizes(), (at::IntArrayRef{16, 32}));
  EXPECT_EQ(sd.at("itm_head.weight").sizes(), (at::IntArrayRef{2, 32}));
  EXPECT_FLOAT_EQ(model->heads(config::Branch::kClip).temp.item<float>(), 0.07f);
  EXPECT_THROW(model->heads(config::Branch::kSam), Error);
}

TEST(Stage1Heads, LavisStage1NamesLoadIntoThem) {
  msmedcap::testing::TempDir dir;
  torch::NoGradGuard no_grad;
  MsMedCapModel source(stage1_model());
  io::StateDict lavis;
  for (const auto& [name, t] : io::module_state_dict(*source)) {
    std::string n = name;
    const std::pair<const char*, const char*> rules[] = {
        {"^qformer\\.cls\\.", "Qformer.cls."},
        {"^qformer\\.layernorm\\.", "Qformer.bert.embeddings.LayerNorm."},
        {"^qformer\\.", "Qformer.bert."},
        {"\\.attention\\.attention\\.", ".attention.self."},
        {"\\.crossattention\\.attention\\.", ".crossattention.self."},
        {"^vision_projection\\.", "vision_proj."},
        {"^text_projection\\.", "text_proj."},
    };
    for (const auto& [from, to] : rules) n = std::regex_replace(n, std::regex(from), to);
    lavis[n] = t;
  }
  lavis["Qformer.cls.predictions.decoder.weight"] = source->qformer->embeddings->word_embeddings->weight;
  io::save_safetensors(dir.file("stage1.safetensors"), lavis);
  MsMedCapModel target(stage1_model());
  const auto report = load_weights(*target, dir.file("stage1.safetensors"), "", {}, "lavis");
  EXPECT_EQ(report.loaded.size(), io::module_state_dict(*target).size()) << report.summary();
  EXPECT_EQ(report.ignored, std::vector<std::string>{"qformer.cls.predictions.decoder.weight"});
  EXPECT_TRUE(at::equal(target->heads(config::Branch::kClip).temp, source->heads(config::Branch::kClip).temp));
  EXPECT_TRUE(at::equal(target->qformer->cls->predictions->bias, source->qformer->cls->predictions->bias));
}

}  // namespace
}  // namespace msmedcap::models
