// The analytic FLOP counts (models/flops.h) against the modules themselves: every matrix
// product's FLOPs are 2 x rows x (its weight's size), with the weights read from the built
// module, plus the attention products; and ViT-B/16 at 224 against its published 17.6 GMACs.
#include <gtest/gtest.h>

#include <torch/torch.h>

#include "msmedcap/models/flops.h"
#include "msmedcap/models/msmedcap.h"
#include "tiny_models.h"

namespace msmedcap::models {
namespace {

/// 2 x rows x the size of every matrix (or convolution kernel) under `prefix` whose name holds
/// all of `parts` and none of `skip`.
double weights(torch::nn::Module& m, const std::string& prefix, std::initializer_list<const char*> parts, int64_t rows,
               std::initializer_list<const char*> skip = {}) {
  double total = 0;
  for (const auto& p : m.named_parameters()) {
    const std::string& name = p.key();
    if (name.rfind(prefix, 0) != 0 || p.value().dim() < 2) continue;
    bool keep = true;
    for (const char* part : parts) keep = keep && name.find(part) != std::string::npos;
    for (const char* s : skip) keep = keep && name.find(s) == std::string::npos;
    if (keep) total += 2.0 * static_cast<double>(rows) * static_cast<double>(p.value().numel());
  }
  return total;
}

config::ModelConfig tiny() {
  const config::Json qformer = {{"hidden_size", 32},        {"intermediate_size", 48},   {"num_hidden_layers", 3},
                                {"num_attention_heads", 4}, {"encoder_hidden_size", 32}, {"num_query_tokens", 5}};
  config::Json sam_qformer = qformer;
  sam_qformer["encoder_hidden_size"] = 64;
  return testing::model_config({
      {"vision",
       {{"hidden_size", 32},
        {"intermediate_size", 64},
        {"num_hidden_layers", 2},
        {"num_attention_heads", 4},
        {"image_size", 16},
        {"patch_size", 4}}},
      {"qformer", qformer},
      // An 8x8 grid: windows of 3 pad it to 9x9.
      {"sam",
       {{"hidden_size", 16},
        {"num_hidden_layers", 2},
        {"num_attention_heads", 2},
        {"mlp_dim", 24},
        {"image_size", 64},
        {"patch_size", 8},
        {"window_size", 3},
        {"global_attn_indexes", {1}},
        {"output_channels", 8}}},
      {"sam_qformer", sam_qformer},
      {"decoder",
       {{"vocab_size", 50},
        {"hidden_size", 32},
        {"num_hidden_layers", 2},
        {"num_attention_heads", 4},
        {"intermediate_size", 40},
        {"max_position_embeddings", 64}}},
  });
}

TEST(Flops, VisionIsItsMatricesAndAttention) {
  const auto cfg = tiny();
  MsMedCapModel model(cfg);
  const int64_t b = 3, grid = 4, n = grid * grid + 1, w = cfg.vision.hidden_size;
  const double expected = weights(*model, "vision_model.encoder.layers.", {}, b * n) +
                          weights(*model, "vision_model.embeddings.patch_embedding", {}, b * grid * grid) +
                          cfg.vision.num_hidden_layers * 4.0 * b * n * n * w;
  EXPECT_DOUBLE_EQ(flops::vision(cfg.vision, b), expected);
}

TEST(Flops, ViTB16At224IsThePublishedCount) {
  const config::VisionConfig vit = testing::model_config({{"vision",
                                                           {{"hidden_size", 768},
                                                            {"intermediate_size", 3072},
                                                            {"num_hidden_layers", 12},
                                                            {"num_attention_heads", 12},
                                                            {"image_size", 224},
                                                            {"patch_size", 16}}}})
                                       .vision;
  const double gmacs = flops::vision(vit, 1) / 2 / 1e9;
  EXPECT_NEAR(gmacs, 17.6, 0.2);  // timm / fvcore: vit_base_patch16_224, 17.6 GMACs
}

TEST(Flops, SamCountsPaddedWindowsGlobalBlocksAndTheNeck) {
  const auto cfg = tiny();
  MsMedCapModel model(cfg);
  const int64_t b = 2, g = 8, padded = 9, w = cfg.sam.hidden_size;
  const std::string enc = "sam_model.vision_encoder.";
  double expected = weights(*model, enc + "patch_embed", {}, b * g * g) + weights(*model, enc + "neck", {}, b * g * g);
  // Block 0: 9 windows of 3x3 over the padded grid; block 1: global over 8x8.
  expected += weights(*model, enc + "layers.0.attn", {}, b * padded * padded, {"rel_pos"}) +
              weights(*model, enc + "layers.1.attn", {}, b * g * g, {"rel_pos"}) +
              weights(*model, enc + "layers.", {"mlp"}, b * g * g);
  expected += 4.0 * (b * 9) * 9 * 9 * w + 4.0 * b * 64 * 64 * w;  // q k^T and p v
  expected += 2.0 * (b * 9) * 9 * 6 * w + 2.0 * b * 64 * 16 * w;  // q . rel_pos_h, rel_pos_w
  EXPECT_DOUBLE_EQ(flops::sam(cfg.sam, b), expected);
}

TEST(Flops, QFormerQueryPassCrossAttendsEverySecondLayer) {
  const auto cfg = tiny();
  MsMedCapModel model(cfg);
  const int64_t b = 2, nq = 5, m = 17, w = cfg.qformer.hidden_size;
  const std::string q = "qformer.encoder.layer.";
  double expected = weights(*model, q, {".attention."}, b * nq, {"crossattention"}) +
                    weights(*model, q, {"crossattention", "query"}, b * nq) +
                    weights(*model, q, {"crossattention", "output"}, b * nq) +
                    weights(*model, q, {"crossattention", "key"}, b * m) +
                    weights(*model, q, {"crossattention", "value"}, b * m) + weights(*model, q, {"_query"}, b * nq);
  expected += 3 * 4.0 * b * nq * nq * w + 2 * 4.0 * b * nq * m * w;  // 3 layers; cross in layers 0 and 2
  EXPECT_DOUBLE_EQ(flops::qformer(cfg.qformer, {b, nq, 0, m}), expected);
}

TEST(Flops, DecoderLayersAttentionAndTiedHead) {
  const auto cfg = tiny();
  MsMedCapModel model(cfg);
  const int64_t b = 2, t = 3, past = 4, w = cfg.decoder.hidden_size;
  const double layers = weights(*model, "language_model.model.decoder.layers.", {}, b * t);
  const double head = weights(*model, "language_model.model.decoder.embed_tokens", {}, b * 1);
  const double attention = cfg.decoder.num_hidden_layers * 4.0 * b * t * (past + t) * w;
  EXPECT_DOUBLE_EQ(flops::decoder(cfg.decoder, b, t, past, 1), layers + head + attention);
  // A training step: stage 2 back-propagates through the frozen decoder (2x), trains the query
  // passes and projections (3x), and runs the live encoders forward once.
  config::StageConfig stage;
  stage.name = "stage2";
  const int64_t p = 10, text = 6;
  const double prefix = flops::qformer(cfg.qformer, {b, 5, 0, 17}) + flops::qformer(cfg.sam_qformer, {b, 5, 0, 8}) +
                        flops::linear(2 * b * 5, 32, 32);
  EXPECT_DOUBLE_EQ(flops::training_step(cfg, stage, b, text, true, false),
                   flops::vision(cfg.vision, b) + 3 * prefix + 2 * flops::decoder(cfg.decoder, b, p + text, 0, text));
}

}  // namespace
}  // namespace msmedcap::models
