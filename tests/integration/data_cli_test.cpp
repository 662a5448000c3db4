// The data commands end to end: decode-image (DICOM), tokenize, train-tokenizer and
// extract-features on the synthetic benchmark with a tiny model, then the loader reading the
// cache.
#include <gtest/gtest.h>

#include <torch/torch.h>

#include <algorithm>

#include "msmedcap/config/config_io.h"
#include "msmedcap/config/run_config.h"
#include "msmedcap/data/feature_cache.h"
#include "msmedcap/data/loader.h"
#include "msmedcap/data/tokenizer.h"
#include "msmedcap/inference/batch_caption.h"
#include "msmedcap/inference/features.h"
#include "msmedcap/io/state_dict.h"
#include "msmedcap/io/tensor_store.h"
#include "msmedcap/models/pretrained.h"
#include "msmedcap/models/provenance.h"
#include "test_utils.h"

namespace msmedcap {
namespace {

TEST(DataCli, DecodeImageWritesWhatTheModelSees) {
  testing::TempDir dir;
  const auto r = testing::run_msmedcap("decode-image " + testing::data_path("images/CT_small.dcm") +
                                       " --window 40,400 --output " + dir.file("ct.safetensors"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto store = io::TensorStore::open(dir.file("ct.safetensors"));
  const auto golden = io::TensorStore::open(testing::data_path("images/dicom_golden.safetensors"));
  EXPECT_TRUE(torch::equal(store.view("image"), golden.view("CT_small_w40_400")));
  bool window = false;
  for (const auto& [k, v] : store.metadata()) window |= (k == "window_source" && v == "override");
  EXPECT_TRUE(window);

  testing::write_text(dir.file("bad.dcm"), std::string(128, '\0') + "DICM\x02\x00");
  const auto bad =
      testing::run_msmedcap("decode-image " + dir.file("bad.dcm") + " --output " + dir.file("x.safetensors"));
  EXPECT_NE(bad.exit_code, 0);
  EXPECT_NE(bad.err.find("bad.dcm"), std::string::npos) << bad.err;
  EXPECT_FALSE(std::filesystem::exists(dir.file("x.safetensors")));
  const auto win = testing::run_msmedcap("decode-image " + testing::data_path("images/MR_small.dcm") +
                                         " --window 40 --output " + dir.file("y.safetensors"));
  EXPECT_NE(win.exit_code, 0);
  EXPECT_NE(win.err.find("--window"), std::string::npos) << win.err;
}

/// `msmedcap tokenize` of the quoted texts: one id list per text.
std::vector<std::vector<int64_t>> token_ids(const std::string& tokenizer, const std::string& quoted_texts) {
  const auto t = testing::run_msmedcap("tokenize --tokenizer " + tokenizer + " " + quoted_texts);
  EXPECT_EQ(t.exit_code, 0) << t.err;
  std::vector<std::vector<int64_t>> out;
  std::istringstream lines(t.out);
  for (std::string line; std::getline(lines, line);)
    out.push_back(nlohmann::json::parse(line)["ids"].get<std::vector<int64_t>>());
  out.resize(std::max<size_t>(out.size(), 2));
  return out;
}

TEST(DataCli, TrainTokenizerThenTokenize) {
  testing::TempDir dir;
  std::string corpus;
  const char* lines[] = {"Chest radiograph showing a small nodule in the right upper lobe.",
                         "Axial CT demonstrating a large mass in the left lower lobe.",
                         "Brain MRI shows no acute abnormality.", "Moderate pleural effusion on the left."};
  for (int k = 0; k < 50; ++k) corpus += std::string(lines[k % 4]) + "\n";
  testing::write_text(dir.file("corpus.txt"), corpus);
  const auto r = testing::run_msmedcap("train-tokenizer --input " + dir.file("corpus.txt") + " --out " +
                                       dir.file("spm") + " --vocab-size 400");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  ASSERT_TRUE(std::filesystem::exists(dir.file("spm/tokenizer.model")));
  EXPECT_FALSE(std::filesystem::exists(dir.file("spm/.corpus.txt")));
  const auto encoded = token_ids(dir.file("spm"), "'left lower lobe' '\n'");
  const auto& ids = encoded[0];
  // LLaMA's normalisation (identity): a newline is one byte token, usable as a caption's end.
  const auto& newline = encoded[1];
  ASSERT_EQ(newline.size(), 3u);        // <s>, the dummy-prefix space, <0x0A>
  EXPECT_EQ(newline[2], 3 + 1 + 0x0A);  // byte pieces follow <unk> <s> </s> <pad>
  ASSERT_GE(ids.size(), 2u);
  EXPECT_EQ(ids[0], 1);  // <s>
  // spm_encode (Debian's sentencepiece) is the independent reference for the rest.
  testing::write_text(dir.file("query.txt"), "left lower lobe\n");
  const auto ref = testing::run_command("spm_encode --model=" + dir.file("spm/tokenizer.model") +
                                        " --output_format=id " + dir.file("query.txt"));
  ASSERT_EQ(ref.exit_code, 0) << ref.err;
  std::vector<int64_t> expect = {1};
  std::istringstream in(ref.out);
  for (int64_t id; in >> id;) expect.push_back(id);
  EXPECT_EQ(ids, expect);
}

TEST(DataCli, TrainWordPieceFromJsonlCaptions) {
  testing::TempDir dir;
  testing::write_text(dir.file("train.jsonl"),
                      "{\"image\": \"a.png\", \"caption\": \"Small nodule, left lobe.\"}\n"
                      "{\"image\": \"b.png\", \"captions\": [\"Large mass; left lobe.\", \"Mass in the lobe\"]}\n");
  const auto r = testing::run_msmedcap("train-tokenizer --kind wordpiece --clean --vocab-size 200 --input " +
                                       dir.file("train.jsonl") + " --out " + dir.file("qf"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto encoded = token_ids(dir.file("qf"), "'left lobe mass' 'lobes'");
  // The vocabulary's words are whole tokens; an unseen word falls back to characters, never [UNK].
  EXPECT_EQ(encoded[0].size(), 5u);                // [CLS] left lobe mass [SEP]
  EXPECT_EQ(encoded[1].size(), 4u);                // [CLS] lobe ##s [SEP]
  for (int64_t id : encoded[1]) EXPECT_NE(id, 2);  // [UNK]
  // Malformed JSONL names its line.
  testing::write_text(dir.file("bad.jsonl"), "{\"caption\": \"ok\"}\n{\"caption\": \n");
  const auto bad = testing::run_msmedcap("train-tokenizer --kind wordpiece --input " + dir.file("bad.jsonl") +
                                         " --out " + dir.file("qf2"));
  EXPECT_NE(bad.exit_code, 0);
  EXPECT_NE(bad.err.find("bad.jsonl:2"), std::string::npos) << bad.err;
}

TEST(DataCli, ExtractFeaturesThenLoadFromTheCache) {
  testing::TempDir dir;
  ASSERT_EQ(testing::run_msmedcap("synth --out " + dir.file("synth") + " --n 12 --seed 3 --image-size 96").exit_code,
            0);
  config::Json cfg = config::read_json_file(testing::data_path("tiny_msmedcap_opt.json"));
  cfg["data"] = {{"sources", {{{"format", "jsonl"}, {"root", dir.file("synth")}, {"annotations", "train.jsonl"}}}},
                 {"transform", {{"clip_size", 32}, {"sam_size", 64}}}};
  cfg["runtime"] = {{"threads", 2}};
  // Weights the CLI loads and this test uses too.
  config::RunConfig run;
  config::from_json(cfg, run, "", "run.json");
  auto model = models::build_model(run.model);
  io::save_safetensors(dir.file("tiny.safetensors"), io::module_state_dict(*model));
  cfg["weights"] = {{{"path", dir.file("tiny.safetensors")}}};
  testing::write_text(dir.file("run.json"), cfg.dump(1));
  const auto r = testing::run_msmedcap("extract-features -c " + dir.file("run.json") + " --out " + dir.file("cache") +
                                       " --batch-size 3 --shard-mb 1");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("img/s"), std::string::npos) << r.err;

  // The same weights and preprocessing: the provenance matches in full; data.feature_cache
  // makes the loader return the cached SAM features and CLIP pixels.
  const auto prov = models::encoder_provenance(*model, config::Branch::kSam, run.data.transform);
  const data::FeatureCache cache(dir.file("cache"), prov);
  EXPECT_EQ(cache.size(),
            static_cast<int64_t>(testing::count_lines(testing::read_text(dir.file("synth/train.jsonl")))));
  run.data.feature_cache = dir.file("cache");
  const data::ExampleOptions options = inference::example_options(*model, run.data);
  ASSERT_TRUE(options.sam_cache != nullptr);
  EXPECT_TRUE(options.clip_cache == nullptr);
  auto mix = std::make_shared<data::Mixture>(run.data);
  config::LoaderConfig lc;
  lc.batch_size = 2;
  lc.shuffle = false;
  data::DataLoader loader(mix, data::make_example_processor(run.data.transform, options), lc);
  const auto batch = loader.next();
  ASSERT_TRUE(batch.has_value());
  EXPECT_EQ(batch->sam.sizes(), (std::vector<int64_t>{2, 32, 8, 8}));  // [B, C, h, w] features, not pixels
  EXPECT_EQ(batch->clip.sizes(), (std::vector<int64_t>{2, 3, 32, 32}));
  // Running the encoder live on the same pixels gives the cached values (fp16 rounding aside).
  data::ExampleOptions live;
  live.clip = false;
  std::mt19937_64 rng(0);
  const auto ex = data::make_example_processor(run.data.transform, live)(batch->samples[0], rng);
  torch::NoGradGuard no_grad;
  model->eval();
  const auto direct = model->sam_embeddings(ex.sam.unsqueeze(0))[0];
  EXPECT_LT((direct - batch->sam[0]).abs().max().item<float>(), 2e-3 * (1 + direct.abs().max().item<float>()));

  // Captioning from the cache (as train.val_caption_images does with val_data.feature_cache)
  // writes what captioning from pixels writes, through the same encoder.
  inference::CaptionOptions co;
  co.generate.max_new_tokens = 6;
  inference::Captioner captioner(model, data::load_tokenizer(testing::data_path("tokenizers/opt")), co);
  const auto samples = data::read_datasets(run.data, "data");
  inference::BatchCaptionOptions bo;
  bo.batch_size = 4;
  bo.transform = run.data.transform;
  auto captions = [&](const inference::BatchCaptionOptions& o) {
    std::vector<std::pair<std::string, double>> out;
    inference::caption_samples(captioner, samples, o, [&](const inference::CaptionRecord& r) {
      EXPECT_EQ(r.error, "");
      out.emplace_back(r.caption, r.score);
    });
    return out;
  };
  const auto from_pixels = captions(bo);
  bo.sam_cache = options.sam_cache;
  const auto from_cache = captions(bo);
  ASSERT_EQ(from_cache.size(), samples.size());
  ASSERT_EQ(from_pixels.size(), samples.size());
  for (size_t i = 0; i < samples.size(); ++i) {
    EXPECT_EQ(from_cache[i].first, from_pixels[i].first) << samples[i].id;
    EXPECT_NEAR(from_cache[i].second, from_pixels[i].second, 1e-2) << samples[i].id;
  }

  // A stage that reads only the CLIP branch neither checks nor opens the SAM cache: its SAM
  // encoder may be another (stage 1 CLIP does not load it). Read in full, the cache is refused.
  {
    auto other_sam = models::build_model(run.model);
    torch::NoGradGuard guard;
    const auto same = model->named_parameters();
    for (auto& p : other_sam->named_parameters()) p.value().copy_(same[p.key()]);
    other_sam->sam_model->parameters().front().add_(1.0);
    const auto clip_only = inference::example_options(*other_sam, run.data, {config::Branch::kClip});
    EXPECT_TRUE(clip_only.clip);
    EXPECT_FALSE(clip_only.sam);
    EXPECT_TRUE(clip_only.sam_cache == nullptr);
    EXPECT_THROW(inference::example_options(*other_sam, run.data), Error);
  }

  // A cache made under other preprocessing is refused with the differing key.
  config::ImageTransformConfig other = run.data.transform;
  other.dicom_window = "40,400";
  try {
    data::FeatureCache(dir.file("cache"), models::encoder_provenance(*model, config::Branch::kSam, other));
    FAIL() << "a provenance mismatch must be refused";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("transform.dicom_window"), std::string::npos) << e.what();
  }
  // In bf16 (runtime.dtype) too.
  const auto half = testing::run_msmedcap("extract-features -c " + dir.file("run.json") + " --dtype bf16 --out " +
                                          dir.file("cache-bf16"));
  ASSERT_EQ(half.exit_code, 0) << half.err;
  EXPECT_NE(half.err.find(" images cached in " + dir.file("cache-bf16")), std::string::npos) << half.err;
  // An existing cache is not overwritten.
  const auto again =
      testing::run_msmedcap("extract-features -c " + dir.file("run.json") + " --out " + dir.file("cache"));
  EXPECT_NE(again.exit_code, 0);
  EXPECT_NE(again.err.find("already holds a feature cache"), std::string::npos) << again.err;
}

}  // namespace
}  // namespace msmedcap
