// The weight map: LAVIS/MSMedCap names (with the EVA q/v bias fusion), original SAM names and
// un-prefixed HF LM names all load into the canonical model and compute the same outputs.
#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <torch/csrc/autograd/grad_mode.h>

#include <regex>
#include <set>

#include "msmedcap/config/config_io.h"
#include "msmedcap/core/check.h"
#include "msmedcap/io/weight_map.h"
#include "msmedcap/models/pretrained.h"
#include "lavis_names.h"
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

at::Tensor logits_of(MsMedCapModel& model) {
  torch::NoGradGuard no_grad;
  model->eval();  // no dropout: the two models are compared exactly
  const auto ref = io::TensorStore::open(fixture_path("tiny_msmedcap_opt/reference.safetensors"));
  return model
      ->forward(ref.view("pixel_values"), ref.view("sam_pixel_values"), ref.view("input_ids"),
                ref.view("attention_mask"))
      .logits;
}

TEST(WeightMap, LavisNamesLoadWithFusedQvBias) {
  TempDir dir;
  const auto canonical = canonical_weights();
  io::save_safetensors(dir.file("hf.safetensors"), canonical);
  io::StateDict lavis;
  for (const auto& [name, t] : canonical) {
    const std::string n = msmedcap::testing::lavis_name(name);
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
    for (const auto& [from, to] : {std::pair{"neck.conv1.", "neck.0."},
                                   {"neck.layer_norm1.", "neck.1."},
                                   {"neck.conv2.", "neck.2."},
                                   {"neck.layer_norm2.", "neck.3."},
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
  EXPECT_LT(
      (sam->vision_encoder(ref.view("sam_pixel_values")) - ref.view("sam_image_embeddings")).abs().max().item<double>(),
      1e-4);
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
    EXPECT_NE(std::string(e.what()).find("parameters are in no weight file (language_model."), std::string::npos)
        << e.what();
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
  const auto make = run_command(python +
                                " -c \"import torch; torch.manual_seed(0); torch.save({'model': {"
                                "'Qformer.bert.encoder.layer.0.attention.self.query.weight': torch.randn(3, 2), "
                                "'query_tokens': torch.randn(1, 4, 2), 'flag': torch.tensor([True, False]), "
                                "'steps': torch.arange(5)}, 'epoch': 3}, '" +
                                dir.file("ckpt.pth") + "')\"");
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

namespace msmedcap::models {
namespace {

/// A Q-Former with bert-base-uncased's layer structure (12 layers, cross-attention every 2nd,
/// text path) at a small width, so that a BERT file of the published names stays small.
config::QFormerConfig bert_shaped_qformer() {
  config::QFormerConfig q;
  q.hidden_size = 16;
  q.intermediate_size = 32;
  q.num_attention_heads = 2;
  q.encoder_hidden_size = 24;
  q.num_query_tokens = 4;
  q.text_path = true;  // vocab 30523 = BERT's 30522 + [DEC], 512 positions: the defaults
  return q;
}

/// BERT's own name for a Q-Former parameter, or "" for what BERT does not have.
std::string bert_name(const std::string& n) {
  if (n.find("crossattention") != std::string::npos || n.find("_query.") != std::string::npos) return "";
  std::string b = std::regex_replace(n, std::regex("^layernorm\\."), "embeddings.LayerNorm.");
  return std::regex_replace(b, std::regex("\\.attention\\.attention\\."), ".attention.self.");
}

TEST(WeightMap, BertBaseUncasedInitialisesAQFormerAsLavisDoes) {
  TempDir dir;
  const auto qcfg = bert_shaped_qformer();
  QFormerModel source(qcfg);
  // The BERT file: the Q-Former's text parts under BERT's names (BertForPreTraining's "bert."
  // prefix and MLM head), without the [DEC] row, plus what BERT has and a Q-Former does not.
  io::StateDict bert;
  std::set<std::string> names;
  for (const auto& [name, t] : io::module_state_dict(*source)) {
    const std::string b = bert_name(name);
    if (b.empty()) continue;
    at::Tensor v = t.detach().clone();
    if (b == "embeddings.word_embeddings.weight" || b == "cls.predictions.bias") v = v.slice(0, 0, 30522).clone();
    bert[(b.rfind("cls.", 0) == 0 ? "" : "bert.") + b] = v;
    if (b.rfind("cls.", 0) != 0) names.insert(b);
  }
  bert["bert.embeddings.token_type_embeddings.weight"] = at::zeros({2, 16});
  bert["bert.embeddings.position_ids"] = at::arange(512).unsqueeze(0);
  bert["bert.pooler.dense.weight"] = at::zeros({16, 16});
  bert["bert.pooler.dense.bias"] = at::zeros({16});
  bert["cls.predictions.decoder.weight"] = bert.at("bert.embeddings.word_embeddings.weight");
  bert["cls.seq_relationship.weight"] = at::zeros({2, 16});
  names.insert({"embeddings.token_type_embeddings.weight", "pooler.dense.weight", "pooler.dense.bias"});
  io::save_safetensors(dir.file("bert.safetensors"), bert);

  // The names are exactly those HF writes for bert-base-uncased (tests/data/hub).
  std::set<std::string> published;
  const auto list = config::read_json_file(data_path("hub/bert-base-uncased/tensors.json"));
  for (const auto& t : list.at("tensors")) {
    published.insert(t.at("name").get<std::string>());
  }
  EXPECT_EQ(names, published);

  QFormerModel target(qcfg);
  config::LoadConfig policy;
  policy.allow_missing = {"encoder.layer.*.crossattention."};
  const auto report = load_weights(*target, dir.file("bert.safetensors"), "", policy, "bert");
  EXPECT_TRUE(report.missing.empty()) << report.summary();
  EXPECT_EQ(report.allowed_missing.size(), 6u * 10u) << report.summary();  // 6 cross-attention layers, 10 tensors each
  const auto got = io::module_state_dict(*target);
  const auto want = io::module_state_dict(*source);
  for (const auto& [name, t] : got) {
    if (name.find("crossattention") != std::string::npos) continue;
    // The query feed-forward is a copy of the text one; the [DEC] row is new.
    std::string from = std::regex_replace(name, std::regex("_query\\."), ".");
    auto expected = want.at(from);
    if (name == "embeddings.word_embeddings.weight" || name == "cls.predictions.bias") {
      ASSERT_EQ(t.size(0), 30523) << name;
      EXPECT_TRUE(at::equal(t.slice(0, 0, 30522), expected.slice(0, 0, 30522))) << name;
      continue;
    }
    EXPECT_TRUE(at::equal(t, expected)) << name;
  }
  EXPECT_TRUE(at::equal(got.at("cls.predictions.bias").slice(0, 30522), at::zeros({1})));
}

}  // namespace
}  // namespace msmedcap::models

namespace msmedcap::models {
namespace {

/// A canonical name as MSMedCap's prototype SamBlip (models/SamBlip.py at 874d28c) stores it.
std::string samblip_name(std::string n) {
  const std::pair<const char*, const char*> rules[] = {
      {"^qformer\\.layernorm\\.", "clip_qformer.Qformer.bert.embeddings.LayerNorm."},
      {"^sam_qformer\\.layernorm\\.", "sam_qformer.Qformer.bert.embeddings.LayerNorm."},
      {"^qformer\\.", "clip_qformer.Qformer.bert."},
      {"^sam_qformer\\.encoder\\.", "sam_qformer.Qformer.bert.encoder."},
      {"\\.attention\\.attention\\.", ".attention.self."},
      {"\\.crossattention\\.attention\\.", ".crossattention.self."},
      {"^query_tokens$", "clip_qformer.query_tokens"},
      {"^sam_query_tokens$", "sam_qformer.query_tokens"},
      {"^language_projection\\.", "clip_proj."},
      {"^sam_language_projection\\.", "sam_proj."},
      {"^language_model\\.", "opt_model."},
  };
  for (const auto& [from, to] : rules) n = std::regex_replace(n, std::regex(from), to);
  return n;
}

TEST(WeightMap, SamBlipPrototypeLayoutLoadsAndLavisRefusesItByName) {
  TempDir dir;
  io::StateDict encoders, samblip;
  for (const auto& [name, t] : canonical_weights()) {
    if (name.rfind("vision_model.", 0) == 0 || name.rfind("sam_model.", 0) == 0) {
      encoders[name] = t;  // SamBlip ran on cached features: no encoders in its file
    } else {
      samblip[samblip_name(name)] = t;
    }
  }
  ASSERT_TRUE(samblip.count("sam_qformer.Qformer.bert.encoder.layer.0.crossattention.self.key.weight"));
  samblip["clip_qformer.cls_token"] = at::zeros({1, 1, 64});  // unused without extra_cls
  io::save_safetensors(dir.file("encoders.safetensors"), encoders);
  io::save_safetensors(dir.file("samblip.safetensors"), samblip);
  auto model = build_model(tiny_msmedcap());
  load_weight_sources(
      *model, {{dir.file("encoders.safetensors"), "", "hf"}, {dir.file("samblip.safetensors"), "", "samblip"}}, {});
  auto reference = build_model(tiny_msmedcap());
  io::save_safetensors(dir.file("all.safetensors"), canonical_weights());
  load_weights(*reference, dir.file("all.safetensors"), "", {});
  EXPECT_TRUE(at::equal(logits_of(model), logits_of(reference)));
  try {
    load_weights(*model, dir.file("samblip.safetensors"), "", {}, "lavis");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("SamBlip prototype layout"), std::string::npos) << e.what();
  }
}

TEST(WeightMap, MsMedCapSamStage1HeadsGoToTheSamBranch) {
  // MSMedCap's blip2_qformer.py trains the SAM Q-Former alone; its heads carry no sam_ prefix.
  TempDir dir;
  auto cfg = tiny_msmedcap();
  cfg.sam_qformer.text_path = true;
  auto trained = build_model(cfg);
  io::StateDict lavis;
  for (const auto& [name, t] : io::module_state_dict(*trained)) {
    if (name.rfind("sam_qformer.", 0) == 0 || name == "sam_query_tokens")
      lavis[msmedcap::testing::lavis_name(name)] = t;
  }
  const auto& heads = trained->heads(config::Branch::kSam);
  lavis["vision_proj.weight"] = heads.vision_projection->weight;
  lavis["vision_proj.bias"] = heads.vision_projection->bias;
  lavis["text_proj.weight"] = heads.text_projection->weight;
  lavis["text_proj.bias"] = heads.text_projection->bias;
  lavis["itm_head.weight"] = heads.itm_head->weight;
  lavis["itm_head.bias"] = heads.itm_head->bias;
  lavis["temp"] = at::full({}, 0.05);
  io::save_safetensors(dir.file("sam_stage1.safetensors"), lavis);
  auto model = build_model(cfg);
  config::LoadConfig policy;
  policy.allow_missing = {"vision_model.",        "query_tokens", "qformer.",
                          "language_projection.", "sam_model.",   "sam_language_projection.",
                          "language_model."};
  const auto report = load_weights(*model, dir.file("sam_stage1.safetensors"), "", policy, "lavis");
  EXPECT_TRUE(report.unexpected.empty() && report.ignored.empty()) << report.summary();
  const auto& loaded = model->heads(config::Branch::kSam);
  EXPECT_TRUE(at::equal(loaded.vision_projection->weight, heads.vision_projection->weight));
  EXPECT_TRUE(at::equal(loaded.itm_head->bias, heads.itm_head->bias));
  EXPECT_FLOAT_EQ(loaded.temp.item<float>(), 0.05f);
}

}  // namespace
}  // namespace msmedcap::models
