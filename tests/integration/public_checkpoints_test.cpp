// The user's command (README, "Caption with the public checkpoints"), end to end on tiny models
// in the layouts users download: an HF BLIP-2 directory (tiny_blip2_opt), an HF SAM directory
// (tiny_sam) under sam_model., and an MSMedCap checkpoint in LAVIS names as
// scripts/convert_pth.py writes it from the .pth (made here from the tiny MSMedCap fixture's
// trained parts). Caption a folder with the MSMedCap generation preset, fine-tune on a JSONL
// dataset, export a model folder, and read it back with --model; a CLIP-only model exported in
// HF's layout gives the HF fixture's weights byte for byte.
#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include <filesystem>
#include <sstream>

#include "lavis_names.h"
#include "msmedcap/config/config_io.h"
#include "msmedcap/io/tensor_store.h"
#include "msmedcap/models/pretrained.h"
#include "test_utils.h"

namespace msmedcap {
namespace {

namespace fs = std::filesystem;
using testing::data_path;
using testing::fixture_path;
using testing::read_jsonl;
using testing::run_msmedcap;
using testing::TempDir;
using testing::write_text;

/// The trained parts of the tiny MSMedCap fixture (Q-Formers, query tokens, projections), in
/// LAVIS names: what an MSMedCap stage-2 .pth holds once converted.
void write_msmedcap_checkpoint(const std::string& path) {
  const auto store = io::TensorStore::open(fixture_path("tiny_msmedcap_opt/model.safetensors"));
  io::StateDict lavis;
  for (const auto& name : store.names()) {
    const bool trained = name.rfind("qformer.", 0) == 0 || name.rfind("sam_qformer.", 0) == 0 ||
                         name == "query_tokens" || name == "sam_query_tokens" ||
                         name.rfind("language_projection.", 0) == 0 || name.rfind("sam_language_projection.", 0) == 0;
    if (trained) lavis[testing::lavis_name(name)] = store.view(name).clone();
  }
  ASSERT_TRUE(lavis.count("sam_Qformer.bert.encoder.layer.0.crossattention.self.key.weight"));
  io::save_safetensors(path, lavis);
}

/// Radiograph-like test images: smooth grey gradients with a bright blob, 48 px.
void write_images(const std::string& dir, int n) {
  fs::create_directories(dir);
  for (int i = 0; i < n; ++i) {
    cv::Mat img(48, 48, CV_8UC1);
    for (int y = 0; y < 48; ++y)
      for (int x = 0; x < 48; ++x) img.at<uint8_t>(y, x) = static_cast<uint8_t>((x * 3 + y * 2 + 40 * i) % 256);
    cv::circle(img, {10 + 8 * i, 24}, 6, 255, -1);
    cv::imwrite(dir + "/scan" + std::to_string(i) + ".png", img);
  }
}

class PublicCheckpoints : public ::testing::Test {
 protected:
  void SetUp() override {
    write_msmedcap_checkpoint(dir.file("msmedcap_stage2.safetensors"));
    write_images(dir.file("images"), 3);
    // The decoder tokenizer as users point at it: the HF model folder, weights beside it.
    fs::create_directories(dir.file("opt"));
    for (const char* f : {"vocab.json", "merges.txt"})
      fs::copy_file(data_path("tokenizers/opt/") + f, dir.file("opt/") + f);
    write_text(dir.file("opt/model.safetensors"), "not a tokenizer file");
    // As configs/weights/msmedcap-from-public.json, pointing at the tiny files.
    const config::Json weights = {
        {"weights",
         {{{"path", fixture_path("tiny_blip2_opt")}, {"prefix", ""}, {"format", "hf"}},
          {{"path", fixture_path("tiny_sam")}, {"prefix", "sam_model."}, {"format", "hf"}},
          {{"path", dir.file("msmedcap_stage2.safetensors")}, {"prefix", ""}, {"format", "lavis"}}}},
        {"tokenizers", {{"decoder", dir.file("opt")}}},
        {"data", {{"transform", {{"clip_size", 32}, {"sam_size", 64}}}}}};
    write_text(dir.file("public.json"), weights.dump());
    model_args = " -c " + data_path("tiny_msmedcap_opt.json") + " -c " + dir.file("public.json");
    // The MSMedCap generation preset (beam 15, min 10 / max 50 new tokens, repetition penalty 9,
    // length penalty 1.2) with the tiny OPT vocabulary's end-of-text id for the real OPT's "\n".
    auto gen = config::read_json_file(std::string(MSMEDCAP_SOURCE_DIR) + "/configs/generate/msmedcap.json");
    gen["generate"]["eos_token_id"] = 2;
    write_text(dir.file("msmedcap-generate.json"), gen.dump());
  }
  TempDir dir;
  std::string model_args;
  const std::string preset = dir.file("msmedcap-generate.json");
};

TEST_F(PublicCheckpoints, CaptionAFolderFineTuneExportAndCaptionAgain) {
  // 1. Caption a folder with the MSMedCap generation preset (beam search), float32 on the CPU.
  auto r = run_msmedcap("caption" + model_args + " --images " + dir.file("images") + " --generate " + preset +
                        " --out " + dir.file("pred.jsonl"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto pred = read_jsonl(dir.file("pred.jsonl"));
  ASSERT_EQ(pred.size(), 3u);
  for (const auto& p : pred) {
    ASSERT_TRUE(p.contains("caption")) << p.dump();
    EXPECT_FALSE(p["caption"].get<std::string>().empty()) << p.dump();  // min_new_tokens 10
  }

  // 2. Fine-tune the caption stage on a JSONL dataset of those images.
  std::string jsonl;
  for (int i = 0; i < 3; ++i) {
    jsonl +=
        config::Json{{"image", "images/scan" + std::to_string(i) + ".png"},
                     {"caption", "a bright round opacity in the " + std::string(i == 0 ? "left" : "right") + " lung"}}
            .dump() +
        "\n";
  }
  write_text(dir.file("train.jsonl"), jsonl);
  const config::Json data = {
      {"data", {{"sources", {{{"format", "jsonl"}, {"root", dir.path()}, {"annotations", "train.jsonl"}}}}}},
      {"loader", {{"batch_size", 3}, {"workers", 1}}},
      {"train", {{"max_steps", 2}, {"log_every", 1}, {"optimizer", {{"warmup_steps", 0}}}}}};
  write_text(dir.file("data.json"), data.dump());
  r = run_msmedcap("train" + model_args + " -c " + std::string(MSMEDCAP_SOURCE_DIR) +
                   "/configs/stages/caption.json -c " + dir.file("data.json") +
                   " --set train.stage.train_vision=false --run-dir " + dir.file("run"));
  ASSERT_EQ(r.exit_code, 0) << r.err;

  // 3. Export the fine-tuned model: one folder with every weight, the tokenizer and the preset.
  r = run_msmedcap("export --run " + dir.file("run") + " --generate " + preset + " --out " + dir.file("model"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  for (const char* f : {"config.json", "model.safetensors", "generation_config.json", "README.md",
                        "tokenizers/decoder/vocab.json", "tokenizers/decoder/merges.txt"}) {
    EXPECT_TRUE(fs::exists(dir.file("model/") + f)) << f;
  }
  EXPECT_FALSE(fs::exists(dir.file("model/tokenizers/decoder/model.safetensors")));  // only tokenizer files travel
  const auto exported = io::TensorStore::open(dir.file("model"));
  EXPECT_TRUE(exported.contains("vision_model.embeddings.patch_embedding.weight"));  // frozen parts too
  EXPECT_TRUE(exported.contains("sam_model.vision_encoder.neck.conv1.weight"));
  // Exporting again over it is refused, and leaves it whole.
  r = run_msmedcap("export --run " + dir.file("run") + " --out " + dir.file("model"));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("already exists"), std::string::npos) << r.err;

  // 4. The folder alone (its generation preset by default) captions as the run does.
  r = run_msmedcap("caption --model " + dir.file("model") + " --images " + dir.file("images") + " --out " +
                   dir.file("folder.jsonl"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  r = run_msmedcap("caption --run " + dir.file("run") + " --images " + dir.file("images") + " --generate " + preset +
                   " --out " + dir.file("run.jsonl"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto a = read_jsonl(dir.file("folder.jsonl")), b = read_jsonl(dir.file("run.jsonl"));
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) EXPECT_EQ(a[i]["caption"], b[i]["caption"]) << i;

  // 5. It also fine-tunes from the folder alone.
  r = run_msmedcap("train --model " + dir.file("model") + " -c " + std::string(MSMEDCAP_SOURCE_DIR) +
                   "/configs/stages/caption.json -c " + dir.file("data.json") +
                   " --set train.stage.train_vision=false --set train.max_steps=1 --run-dir " + dir.file("run2"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
}

TEST(ModelFolder, Blip2ExportedInHfLayoutEqualsTheHfFilesByteForByte) {
  TempDir dir;
  for (const char* name : {"tiny_blip2_opt", "tiny_blip2_llama", "tiny_blip2_gpt2"}) {
    const std::string fixture = fixture_path(name);
    const auto cfg = models::model_config_from_hf_blip2(models::read_hf_config(fixture), fixture + "/config.json");
    const config::Json run = {{"model", config::to_json(cfg)},
                              {"weights", {{{"path", fixture}, {"prefix", ""}, {"format", "hf"}}}}};
    write_text(dir.file(std::string(name) + ".json"), run.dump());
    const std::string out = dir.file(std::string(name) + "-hf");
    auto r = run_msmedcap("export -c " + dir.file(std::string(name) + ".json") + " --format hf --out " + out);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(testing::read_text(out + "/model.safetensors"), testing::read_text(fixture + "/model.safetensors"))
        << name;
    // Its config.json reads back to the same model.
    const auto back = models::model_config_from_hf_blip2(models::read_hf_config(out), out + "/config.json");
    EXPECT_EQ(config::to_json(back), config::to_json(cfg)) << name;
  }
  // A model with a SAM branch has no HF layout.
  auto r = run_msmedcap("export -c " + data_path("tiny_msmedcap_opt.json") + " --format hf --out " + dir.file("x"));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("no SAM branch"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(dir.file("x")));
}

TEST(ModelFolder, ForwardFromTheFolderEqualsTheConfigItCameFrom) {
  TempDir dir;
  const std::string fixture = fixture_path("tiny_msmedcap_opt");
  const config::Json weights = {
      {"weights", {{{"path", fixture + "/model.safetensors"}, {"prefix", ""}, {"format", "hf"}}}}};
  write_text(dir.file("w.json"), weights.dump());
  const std::string cfg = " -c " + data_path("tiny_msmedcap_opt.json") + " -c " + dir.file("w.json");
  auto r = run_msmedcap("export" + cfg + " --out " + dir.file("model"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string inputs = " --inputs " + fixture + "/reference.safetensors --output ";
  r = run_msmedcap("forward" + cfg + inputs + dir.file("a.safetensors"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  r = run_msmedcap("forward --model " + dir.file("model") + inputs + dir.file("b.safetensors"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto a = io::TensorStore::open(dir.file("a.safetensors")), b = io::TensorStore::open(dir.file("b.safetensors"));
  EXPECT_TRUE(at::equal(a.view("logits"), b.view("logits")));
  // Not a model folder: a clear error naming it.
  r = run_msmedcap("forward --model " + fixture_path("tiny_blip2_opt") + inputs + dir.file("c.safetensors"));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("not an msmedcap model folder"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace msmedcap
