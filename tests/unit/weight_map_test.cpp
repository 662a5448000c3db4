// The weight map: LAVIS/MSMedCap names (with the EVA q/v bias fusion), original SAM names and
// un-prefixed HF LM names all load into the canonical model and compute the same outputs.
#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <torch/csrc/autograd/grad_mode.h>

#include <regex>

#include "msmedcap/config/config_io.h"
#include "msmedcap/core/check.h"
#include "msmedcap/io/weight_map.h"
#include "msmedcap/models/pretrained.h"
#include "test_utils.h"

namespace msmedcap::models {
namespace {

using msmedcap::testing::data_path;
using msmedcap::testing::fixture_path;
using msmedcap::testing::run_command;
using msmedcap::testing::TempDir;

config::ModelConfig tiny_msmedcap() {
  config::RunConfig run;
  config::resolve_config(run, {{data_path("tiny_msmedcap_opt.json")}, {}});
  return run.model;
}

/// The canonical fixture weights with every EVA key bias set to zero (LAVIS has none).
io::StateDict canonical_weights() {
  io::StateDict sd;
  for (const auto& [name, t] : io::TensorStore::open(fixture_path("tiny_msmedcap_opt/model.safetensors")).load_all()) {
    sd[name] = t.clone();
  }
  for (auto& [name, t] : sd) {
    if (name.find("self_attn.qkv.bias") != std::string::npos && name.rfind("vision_model.", 0) == 0) {
      const int64_t d = t.size(0) / 3;
      t.slice(0, d, 2 * d).zero_();
    }
  }
  return sd;
}

std::string lavis_name(std::string n) {
  const std::pair<const char*, const char*> rules[] = {
      {"^vision_model\\.embeddings\\.class_embedding$", "visual_encoder.cls_token"},
      {"^vision_model\\.embeddings\\.position_embedding$", "visual_encoder.pos_embed"},
      {"^vision_model\\.embeddings\\.patch_embedding\\.", "visual_encoder.patch_embed.proj."},
      {"^vision_model\\.encoder\\.layers\\.(\\d+)\\.layer_norm([12])\\.", "visual_encoder.blocks.$1.norm$2."},
      {"^vision_model\\.encoder\\.layers\\.(\\d+)\\.self_attn\\.qkv\\.", "visual_encoder.blocks.$1.attn.qkv."},
      {"^vision_model\\.encoder\\.layers\\.(\\d+)\\.self_attn\\.projection\\.", "visual_encoder.blocks.$1.attn.proj."},
      {"^vision_model\\.encoder\\.layers\\.(\\d+)\\.mlp\\.", "visual_encoder.blocks.$1.mlp."},
      {"^vision_model\\.post_layernorm\\.", "ln_vision."},
      {"^(sam_)?qformer\\.layernorm\\.", "$1Qformer.bert.embeddings.LayerNorm."},
      {"^qformer\\.", "Qformer.bert."},
      {"^sam_qformer\\.", "sam_Qformer.bert."},
      {"\\.attention\\.attention\\.", ".attention.self."},
      {"\\.crossattention\\.attention\\.", ".crossattention.self."},
      {"^language_projection\\.", "opt_proj."},
      {"^sam_language_projection\\.", "sam_opt_proj."},
      {"^language_model\\.", "opt_model."},
  };
  for (const auto& [from, to] : rules) n = std::regex_replace(n, std::regex(from), to);
  return n;
}

at::Tensor logits_of(MsMedCapModel& model) {
  torch::NoGradGuard no_grad;
  const auto ref = io::TensorStore::open(fixture_path("tiny_msmedcap_opt/reference.safetensors"));
  return model->forward(ref.view("pixel_values"), ref.view("sam_pixel_values"), ref.view("input_ids"),
                        ref.view("attention_mask")).logits;
}

TEST(WeightMap, LavisNamesLoadWithFusedQvBias) {
  TempDir dir;
  const auto canonical = canonical_weights();
  io::save_safetensors(dir.file("hf.safetensors"), canonical);
  io::StateDict lavis;
  for (const auto& [name, t] : canonical) {
    const std::string n = lavis_name(name);
    if (n.rfind("visual_encoder.", 0) == 0 && n.compare(n.size() - 9, 9, ".qkv.bias") == 0) {
      const int64_t d = t.size(0) / 3;
      lavis[n.substr(0, n.size() - 9) + ".q_bias"] = t.slice(0, 0, d).clone();
      lavis[n.substr(0, n.size() - 9) + ".v_bias"] = t.slice(0, 2 * d).clone();
    } else {
      lavis[n] = t;
    }
  }
  // Stage-1 leftovers a LAVIS/MSMedCap checkpoint carries: ignored, not errors.
  lavis["temp"] = at::full({}, 0.07);
  lavis["vision_proj.weight"] = at::zeros({4, 64});
  lavis["Qformer.cls.predictions.bias"] = at::zeros({10});
  lavis["Qformer.bert.embeddings.position_ids"] = at::arange(8).unsqueeze(0);
  lavis["sam_Qformer.bert.embeddings.word_embeddings.weight"] = at::zeros({10, 64});
  lavis["Qformer.bert.encoder.layer.0.intermediate.dense.weight"] = at::zeros({128, 64});
  io::save_safetensors(dir.file("lavis.safetensors"), lavis);

  auto reference = build_model(tiny_msmedcap());
  load_weights(*reference, dir.file("hf.safetensors"), "", {});
  auto converted = build_model(tiny_msmedcap());
  const auto report = load_weights(*converted, dir.file("lavis.safetensors"), "", {}, "lavis");
  EXPECT_EQ(report.loaded.size(), io::module_state_dict(*converted).size());
  // The five leftovers above, and the tied OPT head (opt_model.lm_head.weight).
  EXPECT_EQ(report.ignored.size(), 6u) << report.summary();
  EXPECT_TRUE(at::equal(logits_of(converted), logits_of(reference)));
}

TEST(WeightMap, LavisQBiasWithoutVBiasIsAnError) {
  TempDir dir;
  io::save_safetensors(dir.file("x.safetensors"), {{"visual_encoder.blocks.0.attn.q_bias", at::zeros({4})}});
  try {
    io::canonical_tensors(io::TensorStore::open(dir.file("x.safetensors")), "lavis");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("needs both q_bias and v_bias"), std::string::npos) << e.what();
  }
  EXPECT_THROW(io::canonical_tensors(io::TensorStore::open(dir.file("x.safetensors")), "timm"), Error);
}

TEST(WeightMap, OriginalSamNamesLoadUnderSamModel) {
  TempDir dir;
  io::StateDict original;
  for (const auto& [name, t] : canonical_weights()) {
    if (name.rfind("sam_model.vision_encoder.", 0) != 0) continue;
    std::string n = "image_encoder." + name.substr(std::string("sam_model.vision_encoder.").size());
    for (const auto& [from, to] : {std::pair{"neck.conv1.", "neck.0."}, {"neck.layer_norm1.", "neck.1."},
                                   {"neck.conv2.", "neck.2."}, {"neck.layer_norm2.", "neck.3."},
                                   {"patch_embed.projection.", "patch_embed.proj."}}) {
      n = std::regex_replace(n, std::regex(std::string("\\.") + from), std::string(".") + to);
    }
    n = std::regex_replace(n, std::regex("\\.layers\\.(\\d+)\\.layer_norm([12])\\."), ".blocks.$1.norm$2.");
    n = std::regex_replace(n, std::regex("\\.layers\\.(\\d+)\\."), ".blocks.$1.");
    original[n] = t;
  }
  original["pixel_mean"] = at::zeros({3, 1, 1});
  original["prompt_encoder.point_embeddings.0.weight"] = at::zeros({1, 4});
  io::save_safetensors(dir.file("sam.safetensors"), original);
  auto cfg = tiny_msmedcap();
  SamModel sam(cfg.sam);
  const auto report = load_weights(*sam, dir.file("sam.safetensors"), "", {}, "sam");
  EXPECT_EQ(report.loaded.size(), io::module_state_dict(*sam).size()) << report.summary();
  const auto ref = io::TensorStore::open(fixture_path("tiny_msmedcap_opt/reference.safetensors"));
  torch::NoGradGuard no_grad;
  EXPECT_LT((sam->vision_encoder(ref.view("sam_pixel_values")) - ref.view("sam_image_embeddings")).abs().max().item<double>(), 1e-4);
}

TEST(WeightMap, ComposedSourcesWithUnprefixedLanguageModel) {
  // The LLM as a standalone HF OPT file without the "model." prefix, the rest from another file.
  TempDir dir;
  io::StateDict lm, rest;
  for (const auto& [name, t] : canonical_weights()) {
    if (name.rfind("language_model.model.", 0) == 0) {
      lm[name.substr(std::string("language_model.model.").size())] = t;
    } else if (name.rfind("language_model.", 0) != 0) {
      rest[name] = t;
    }
  }
  io::save_safetensors(dir.file("rest.safetensors"), rest);
  io::save_safetensors(dir.file("opt.safetensors"), lm);
  auto model = build_model(tiny_msmedcap());
  std::vector<config::WeightsSource> sources = {{dir.file("rest.safetensors"), "", "hf"},
                                                {dir.file("opt.safetensors"), "language_model.", "hf-lm"}};
  load_weight_sources(*model, sources, {});
  auto reference = build_model(tiny_msmedcap());
  io::save_safetensors(dir.file("all.safetensors"), canonical_weights());
  load_weights(*reference, dir.file("all.safetensors"), "", {});
  EXPECT_TRUE(at::equal(logits_of(model), logits_of(reference)));
  // Without the LLM file, the composition is incomplete and says so.
  try {
    load_weight_sources(*model, {sources[0]}, {});
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("parameters are in no weight file (language_model."), std::string::npos) << e.what();
  }
  config::LoadConfig allow;
  allow.allow_missing = {"language_model."};
  EXPECT_NO_THROW(load_weight_sources(*model, {sources[0]}, allow));
}

TEST(WeightMap, ConvertPthScriptKeepsNamesAndValues) {
  TempDir dir;
  const std::string python = "/usr/bin/python3";
  const auto probe = run_command(python + " -c 'import torch'");
  ASSERT_EQ(probe.exit_code, 0) << "Debian's python3-torch is required (scripts/install_deps.sh): " << probe.err;
  const auto make = run_command(python + " -c \"import torch; torch.manual_seed(0); torch.save({'model': {"
                                "'Qformer.bert.encoder.layer.0.attention.self.query.weight': torch.randn(3, 2), "
                                "'query_tokens': torch.randn(1, 4, 2), 'flag': torch.tensor([True, False]), "
                                "'steps': torch.arange(5)}, 'epoch': 3}, '" + dir.file("ckpt.pth") + "')\"");
  ASSERT_EQ(make.exit_code, 0) << make.err;
  const auto r = run_command(python + " " + std::string(MSMEDCAP_SOURCE_DIR) + "/scripts/convert_pth.py " +
                             dir.file("ckpt.pth") + " " + dir.file("ckpt.safetensors"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto store = io::TensorStore::open(dir.file("ckpt.safetensors"));
  EXPECT_EQ(store.names().size(), 4u);
  EXPECT_EQ(store.view("query_tokens").sizes(), (at::IntArrayRef{1, 4, 2}));
  EXPECT_TRUE(at::equal(store.view("steps"), at::arange(5)));
  EXPECT_TRUE(store.view("flag")[0].item<bool>());
  // Python's own layout: the file re-serialises byte for byte.
  io::save_safetensors(dir.file("again.safetensors"), store.load_all(), store.metadata());
  EXPECT_EQ(msmedcap::testing::read_text(dir.file("again.safetensors")),
            msmedcap::testing::read_text(dir.file("ckpt.safetensors")));
  const auto bad = run_command(python + " " + std::string(MSMEDCAP_SOURCE_DIR) + "/scripts/convert_pth.py " +
                               dir.file("missing.pth") + " " + dir.file("x.safetensors"));
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_NE(bad.err.find("no such file"), std::string::npos);
}

}  // namespace
}  // namespace msmedcap::models
