// The public checkpoints users download, at full size: every preset and every config.json the
// hub serves today (tests/data/hub, copied from the published configs with the tensor lists HF
// transformers writes for them) gives exactly the tensors of those files, names and shapes.
// The models are built under DeferInit, which must leave their memory untouched.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <map>
#include <set>

#include "msmedcap/config/config_io.h"
#include "msmedcap/config/run_config.h"
#include "msmedcap/core/device.h"
#include "msmedcap/io/state_dict.h"
#include "msmedcap/models/layers.h"
#include "msmedcap/models/pretrained.h"
#include "test_utils.h"

namespace msmedcap::models {
namespace {

using Shapes = std::map<std::string, std::vector<int64_t>>;

std::string hub(const std::string& folder) { return msmedcap::testing::data_path("hub/" + folder); }

/// The tensors.json list of a hub folder, names under `keep` only, with `rename` applied to
/// the start of each name.
Shapes hub_tensors(const std::string& folder, const std::string& keep = "", const std::string& add = "") {
  const auto j = config::read_json_file(hub(folder) + "/tensors.json");
  Shapes out;
  for (const auto& t : j.at("tensors")) {
    const auto name = t.at("name").get<std::string>();
    if (name.rfind(keep, 0) == 0) out[add + name] = t.at("shape").get<std::vector<int64_t>>();
  }
  EXPECT_FALSE(out.empty()) << folder;
  return out;
}

Shapes module_tensors(const torch::nn::Module& module, const std::string& keep = "") {
  Shapes out;
  for (const auto& [name, t] : io::module_state_dict(module)) {
    if (name.rfind(keep, 0) == 0) out[name] = t.sizes().vec();
  }
  return out;
}

/// Names in one and not the other, for a readable failure.
std::string difference(const Shapes& got, const Shapes& want) {
  std::string s;
  int shown = 0;
  for (const auto& [name, shape] : got) {
    const auto it = want.find(name);
    if (it == want.end() && shown++ < 5) s += " extra " + name;
    if (it != want.end() && it->second != shape && shown++ < 5) s += " shape " + name;
  }
  for (const auto& [name, shape] : want) {
    if (!got.count(name) && shown++ < 5) s += " missing " + name;
  }
  return s;
}

void expect_same(const Shapes& got, const Shapes& want, const std::string& what) {
  EXPECT_TRUE(got == want) << what << ": " << got.size() << " tensors vs " << want.size() << ":"
                           << difference(got, want);
}

MsMedCapModel deferred(const config::ModelConfig& cfg) {
  DeferInit defer;
  return MsMedCapModel(cfg);
}

config::ModelConfig preset(const std::vector<std::string>& files) {
  config::RunConfig run;
  std::vector<std::string> paths;
  for (const auto& f : files) paths.push_back(std::string(MSMEDCAP_SOURCE_DIR) + "/configs/models/" + f);
  config::resolve_config(run, {paths, {}});
  return run.model;
}

TEST(Hub, Blip2Opt27bConfigAsServedTodayGivesItsTensors) {
  const auto hf = read_hf_config(hub("Salesforce--blip2-opt-2.7b"));
  const auto cfg = model_config_from_hf_blip2(hf, "config.json");
  EXPECT_EQ(cfg.image_token_index, 50265);
  EXPECT_EQ(cfg.decoder.vocab_size, 50304);  // padded past the tokenizer's 50265 + 7 added
  // The tied LM head is not in the files, nor in the model.
  expect_same(module_tensors(*deferred(cfg)), hub_tensors("Salesforce--blip2-opt-2.7b"), "hub config");
}

TEST(Hub, Blip2AndMsMedCapPresetsGiveTheHubTensors) {
  const auto blip2 = hub_tensors("Salesforce--blip2-opt-2.7b");
  const auto cfg = preset({"msmedcap-opt2.7b.json", "blip2-opt2.7b.json"});
  EXPECT_EQ(cfg.image_token_index, 50265);
  expect_same(module_tensors(*deferred(cfg)), blip2, "blip2-opt2.7b preset");

  // MSMedCap: the same CLIP branch and LLM, SAM ViT-B's encoder under sam_model., and a second
  // Q-Former whose cross-attention reads 4096-wide SAM channel tokens.
  const auto dual = module_tensors(*deferred(preset({"msmedcap-opt2.7b.json"})));
  Shapes want = blip2;
  for (const auto& [name, shape] : hub_tensors("facebook--sam-vit-base", "vision_encoder.", "sam_model.")) {
    want[name] = shape;
  }
  for (const auto& [name, shape] : blip2) {
    std::vector<int64_t> s = shape;
    if (name.rfind("qformer.", 0) == 0) {
      const bool cross_kv = name.find("crossattention.attention.key.weight") != std::string::npos ||
                            name.find("crossattention.attention.value.weight") != std::string::npos;
      if (cross_kv) s[1] = 4096;
      want["sam_" + name] = s;
    }
  }
  want["sam_query_tokens"] = blip2.at("query_tokens");
  want["sam_language_projection.weight"] = blip2.at("language_projection.weight");
  want["sam_language_projection.bias"] = blip2.at("language_projection.bias");
  expect_same(dual, want, "msmedcap-opt2.7b preset");
}

TEST(Hub, SamVitBaseConfigAndPresetGiveTheEncoderTensors) {
  // SamModel's prompt encoder and mask decoder are in the file; captioning reads the encoder.
  const auto want = hub_tensors("facebook--sam-vit-base", "vision_encoder.");
  SamModel from_hub{nullptr};
  {
    DeferInit defer;
    from_hub = SamModel(sam_config_from_hf(read_hf_config(hub("facebook--sam-vit-base")), "config.json"));
  }
  expect_same(module_tensors(*from_hub), want, "sam-vit-base config.json");
  Shapes from_preset;
  for (const auto& [name, shape] :
       module_tensors(*deferred(preset({"msmedcap-opt2.7b.json", "sam-vit-b.json"})), "sam_model.")) {
    from_preset[name.substr(std::string("sam_model.").size())] = shape;
  }
  expect_same(from_preset, want, "sam-vit-b preset");
}

TEST(Hub, ClipVitLargeVisionTowerGivesItsTensors) {
  ClipVisionModel clip{nullptr};
  {
    DeferInit defer;
    clip = ClipVisionModel(
        clip_vision_config_from_hf(read_hf_config(hub("openai--clip-vit-large-patch14-vision")), "config.json"));
  }
  auto want = hub_tensors("openai--clip-vit-large-patch14-vision");
  want.erase("vision_model.embeddings.position_ids");  // a buffer HF recomputes; loading ignores it
  expect_same(module_tensors(*clip), want, "clip-vit-large-patch14 vision");
}

TEST(Hub, StandaloneOpt27bGivesItsTensors) {
  std::shared_ptr<DecoderLM> lm;
  {
    DeferInit defer;
    lm = build_decoder(decoder_config_from_hf(read_hf_config(hub("facebook--opt-2.7b")), "config.json"));
  }
  expect_same(module_tensors(*lm), hub_tensors("facebook--opt-2.7b"), "opt-2.7b");
}

TEST(Hub, DeferredFullSizeModelTouchesNoWeightMemory) {
  // MSMedCap with OPT-2.7B: about 4 billion float32 parameters (16 GB) allocated, none written.
  const double before = core::resident_mb();
  auto model = deferred(preset({"msmedcap-opt2.7b.json"}));
  double bytes = 0;
  for (const auto& p : model->parameters()) bytes += static_cast<double>(p.nbytes());
  const double grown = core::resident_mb() - before;
  EXPECT_GT(bytes, 15e9);
  EXPECT_LT(grown, 300.0) << "building under DeferInit wrote " << grown << " MiB";
}

}  // namespace
}  // namespace msmedcap::models
