// Config system: layering, type-checked overrides, unknown keys with the nearest valid key.
#include <gtest/gtest.h>

#include <set>

#include "msmedcap/config/config_io.h"
#include "msmedcap/config/generate_config.h"
#include "msmedcap/config/run_config.h"
#include "msmedcap/core/check.h"
#include "test_utils.h"

namespace msmedcap::config {
namespace {

using msmedcap::testing::TempDir;
using msmedcap::testing::write_text;

std::string error_of(const ConfigSources& sources) {
  RunConfig cfg;
  try {
    resolve_config(cfg, sources);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(Config, FuzzFoundOverridesEndInNamedErrors) {
  // libFuzzer (tests/fuzz/fuzz_config.cpp) found these escaping as nlohmann exceptions: an
  // override with invalid UTF-8 (tests/data/fuzz/config/crash-invalid-utf8-override: "data=}"
  // then bytes 0x00 0x28 0xff...) and a number beyond double's range.
  const std::string crash = testing::read_text(testing::data_path("fuzz/config/crash-invalid-utf8-override"));
  const std::string assignment = crash.substr(0, crash.find('\n'));
  EXPECT_NE(error_of({{}, {assignment}}).find("not valid UTF-8"), std::string::npos);
  EXPECT_NE(error_of({{}, {"runtime.log_level=caf\xc3"}}).find("not valid UTF-8"), std::string::npos);
  EXPECT_NE(error_of({{}, {"runtime.seed=1e999"}}).find("runtime.seed"), std::string::npos);
  TempDir dir;
  write_text(dir.file("huge.json"), "{\"runtime\": {\"seed\": 1e99999}}");
  const std::string e = error_of({{dir.file("huge.json")}, {}});
  EXPECT_NE(e.find(dir.file("huge.json") + ": invalid JSON: number overflow"), std::string::npos) << e;
}

TEST(Config, DefaultsRoundTripThroughJson) {
  RunConfig cfg;
  const Json j = to_json(cfg);
  EXPECT_EQ(j["runtime"]["threads"], 0);
  EXPECT_EQ(j["runtime"]["device"], "cpu");
  RunConfig back;
  back.runtime.threads = 7;
  from_json(j, back, "", "");
  EXPECT_EQ(back.runtime.threads, 0);
  // Declaration order is kept in dumps.
  EXPECT_EQ(j.begin().key(), "runtime");
}

TEST(Config, FilesMergeLeftToRightAndSetWins) {
  TempDir dir;
  write_text(dir.file("a.json"), R"({"runtime": {"threads": 2, "seed": 7}})");
  write_text(dir.file("b.json"), R"({"runtime": {"threads": 3}, "load": {"allow_missing": ["x."]}})");
  RunConfig cfg;
  const Json resolved = resolve_config(cfg, {{dir.file("a.json"), dir.file("b.json")}, {"runtime.log_level=debug"}});
  EXPECT_EQ(cfg.runtime.threads, 3);
  EXPECT_EQ(cfg.runtime.seed, 7);
  EXPECT_EQ(cfg.runtime.log_level, "debug");
  ASSERT_EQ(cfg.load.allow_missing.size(), 1u);
  EXPECT_EQ(cfg.load.allow_missing[0], "x.");
  EXPECT_EQ(resolved["runtime"]["threads"], 3);
}

TEST(Config, NullInALaterFileRestoresTheDefault) {
  TempDir dir;
  write_text(dir.file("a.json"), R"({"runtime": {"seed": 7}})");
  write_text(dir.file("b.json"), R"({"runtime": {"seed": null}})");
  RunConfig cfg;
  resolve_config(cfg, {{dir.file("a.json"), dir.file("b.json")}, {}});
  EXPECT_EQ(cfg.runtime.seed, 42);
}

TEST(Config, UnknownKeyInFileNamesFilePathAndNearestKey) {
  TempDir dir;
  write_text(dir.file("bad.json"), R"({"runtime": {"thread": 2}})");
  const std::string e = error_of({{dir.file("bad.json")}, {}});
  EXPECT_NE(e.find(dir.file("bad.json")), std::string::npos) << e;
  EXPECT_NE(e.find("unknown key 'runtime.thread'"), std::string::npos) << e;
  EXPECT_NE(e.find("did you mean 'runtime.threads'?"), std::string::npos) << e;
}

TEST(Config, UnknownSectionWithoutCloseMatchHasNoSuggestion) {
  TempDir dir;
  write_text(dir.file("bad.json"), R"({"zzzzzzzz": 1})");
  const std::string e = error_of({{dir.file("bad.json")}, {}});
  EXPECT_NE(e.find("unknown key 'zzzzzzzz'"), std::string::npos) << e;
  EXPECT_EQ(e.find("did you mean"), std::string::npos) << e;
}

TEST(Config, WrongTypeInFileNamesThePath) {
  TempDir dir;
  write_text(dir.file("bad.json"), R"({"runtime": {"threads": "four"}})");
  const std::string e = error_of({{dir.file("bad.json")}, {}});
  EXPECT_NE(e.find("runtime.threads: expected an integer, got string \"four\""), std::string::npos) << e;
}

TEST(Config, FloatWhereIntegerExpectedIsRejected) {
  const std::string e = error_of({{}, {"runtime.threads=1.5"}});
  EXPECT_NE(e.find("--set runtime.threads=1.5: runtime.threads: expected an integer, got number 1.5"),
            std::string::npos)
      << e;
}

TEST(Config, BadOverrideValueNamesTheOverride) {
  const std::string e = error_of({{}, {"runtime.threads=abc"}});
  EXPECT_NE(e.find("--set runtime.threads=abc: runtime.threads: expected an integer, got string"), std::string::npos)
      << e;
}

TEST(Config, UnknownOverrideKeySuggestsNearest) {
  const std::string e = error_of({{}, {"runtime.treads=2"}});
  EXPECT_NE(e.find("--set runtime.treads=2: unknown key 'runtime.treads' (did you mean "
                   "'runtime.threads'?)"),
            std::string::npos)
      << e;
  const std::string e2 = error_of({{}, {"runtme.threads=2"}});
  EXPECT_NE(e2.find("did you mean 'runtime'?"), std::string::npos) << e2;
}

TEST(Config, OverrideWithoutEqualsIsAnError) {
  const std::string e = error_of({{}, {"runtime.threads"}});
  EXPECT_NE(e.find("expected KEY=VALUE"), std::string::npos) << e;
}

TEST(Config, OverrideIntoAScalarIsAnError) {
  const std::string e = error_of({{}, {"runtime.threads.x=1"}});
  EXPECT_NE(e.find("'runtime.threads' is not a section"), std::string::npos) << e;
  const std::string e2 = error_of({{}, {"runtime=3"}});
  EXPECT_NE(e2.find("runtime: expected an object, got integer 3"), std::string::npos) << e2;
}

TEST(Config, StringFieldsKeepTextThatLooksLikeJson) {
  const std::string e = error_of({{}, {"runtime.log_level=123"}});
  // "123" stays a string, so the failure is validation of the value, not a type error.
  EXPECT_NE(e.find("runtime.log_level: expected trace, debug, info, warn, error or off, got '123'"), std::string::npos)
      << e;
}

TEST(Config, ArrayOverrideIsParsedAsJson) {
  RunConfig cfg;
  resolve_config(cfg, {{}, {R"(load.allow_missing=["a.", "b."])"}});
  ASSERT_EQ(cfg.load.allow_missing.size(), 2u);
  EXPECT_EQ(cfg.load.allow_missing[1], "b.");
  const std::string e = error_of({{}, {"load.allow_missing=[1]"}});
  EXPECT_NE(e.find("load.allow_missing[0]: expected a string, got integer 1"), std::string::npos) << e;
}

TEST(Config, ValidationRejectsBadValues) {
  EXPECT_NE(error_of({{}, {"runtime.threads=-1"}}).find("runtime.threads: must be >= 0"), std::string::npos);
  EXPECT_NE(error_of({{}, {"runtime.device=gpu"}}).find("runtime.device: expected cpu, cuda"), std::string::npos);
  EXPECT_NE(error_of({{}, {R"(load.allow_missing=[""])"}}).find("load.allow_missing: an empty"), std::string::npos);
  EXPECT_NE(error_of({{}, {"train.nan_action=ignore"}}).find("train.nan_action: expected skip or stop"),
            std::string::npos);
  EXPECT_NE(error_of({{}, {"train.grad_accum=0"}}).find("train.grad_accum: must be >= 1"), std::string::npos);
  EXPECT_NE(error_of({{}, {"train.precision=fp8"}}).find("train.precision: expected fp32"), std::string::npos);
  EXPECT_NE(error_of({{}, {"train.stage.name=stage3"}}).find("train.stage.name: expected"), std::string::npos);
  // Word dropout: a share below 1, and only where captions follow a visual prefix.
  EXPECT_NE(error_of({{}, {"train.word_dropout=1"}}).find("train.word_dropout: must be in [0, 1)"), std::string::npos);
  EXPECT_NE(error_of({{}, {"train.word_dropout=0.2", "train.stage.name=stage1_clip"}})
                .find("train.word_dropout: only stage2 and caption"),
            std::string::npos);
  EXPECT_EQ(error_of({{}, {"train.word_dropout=0.2", "train.stage.name=caption"}}), "");
  // Mirroring: single words, and only where captions follow a visual prefix.
  EXPECT_NE(error_of({{}, {R"(train.mirror_unscored_words=["left"])", "train.stage.name=sam_pretrain"}})
                .find("train.mirror_unscored_words: only stage2 and caption"),
            std::string::npos);
  EXPECT_NE(error_of({{}, {R"(train.mirror_unscored_words=["left side"])", "train.stage.name=stage2"}})
                .find("train.mirror_unscored_words: expected single words, got 'left side'"),
            std::string::npos);
  EXPECT_EQ(error_of({{}, {R"(train.mirror_unscored_words=["left","right"])", "train.stage.name=stage2"}}), "");
  // The turns of sam_pretrain's images: known names, each once, and only with mask_symmetries.
  const std::vector<std::string> turning = {"train.stage.name=sam_pretrain", "train.stage.mask_symmetries=true"};
  const auto with = [&](std::string kv) {
    auto sets = turning;
    sets.push_back(std::move(kv));
    return error_of({{}, sets});
  };
  EXPECT_EQ(with(R"(train.stage.mask_turns=["up_down"])"), "");
  EXPECT_NE(with(R"(train.stage.mask_turns=["up_down", "rotate"])")
                .find("train.stage.mask_turns[1]: expected left_right, up_down or transpose, got 'rotate'"),
            std::string::npos);
  EXPECT_NE(with(R"(train.stage.mask_turns=["up_down", "up_down"])").find("'up_down' named twice"), std::string::npos);
  EXPECT_NE(with("train.stage.mask_turns=[]").find("train.stage.mask_turns: name at least one"), std::string::npos);
  EXPECT_EQ(with("train.stage.mask_symmetries_until=0.75"), "");
  EXPECT_NE(with("train.stage.mask_symmetries_until=0").find("train.stage.mask_symmetries_until: must be in (0, 1]"),
            std::string::npos);
  EXPECT_NE(error_of({{}, {"train.stage.name=sam_pretrain", "train.stage.mask_symmetries_until=0.5"}})
                .find("train.stage.mask_symmetries_until: needs mask_symmetries true"),
            std::string::npos);
  EXPECT_NE(error_of({{}, {"train.stage.name=sam_pretrain", R"(train.stage.mask_turns=["up_down"])"}})
                .find("train.stage.mask_turns: needs mask_symmetries true"),
            std::string::npos);
  // val_data's images go through data.transform, so a transform of its own is refused, not ignored;
  // one equal to data's (augmentation aside) is accepted.
  EXPECT_NE(error_of({{}, {"val_data.transform.clip_size=364"}}).find("val_data.transform: not used"),
            std::string::npos);
  EXPECT_EQ(error_of({{}, {"data.transform.clip_size=364", "val_data.transform.clip_size=364"}}), "");
  EXPECT_EQ(error_of({{}, {"data.transform.augment=true"}}), "");
  // A Q-Former must read features as wide as its encoder writes them.
  EXPECT_NE(error_of({{}, {"model.qformer.encoder_hidden_size=1024"}})
                .find("model.qformer.encoder_hidden_size: 1024 does not match model.vision.hidden_size (1408)"),
            std::string::npos);
  EXPECT_NE(error_of({{}, {"model.use_sam=true", "model.sam_qformer.encoder_hidden_size=300"}})
                .find("model.sam_qformer.encoder_hidden_size: 300 does not match the SAM features' width"),
            std::string::npos);
}

TEST(Config, RangeErrorsNameTheSourceThatSetTheValue) {
  // validate() runs on the merged config; its error is traced back to the last source that set
  // the key (or a list or section above it), not left without a file.
  TempDir dir;
  write_text(dir.file("a.json"), R"({"data": {"transform": {"clip_size": 3}}})");
  write_text(dir.file("b.json"), R"({"train": {"max_steps": 5}})");
  const std::string from_file = error_of({{dir.file("a.json"), dir.file("b.json")}, {}});
  EXPECT_EQ(from_file.rfind(dir.file("a.json") + ": data.transform.clip_size: expected 16..4096", 0), 0u) << from_file;
  const std::string from_set = error_of({{dir.file("a.json")}, {"data.transform.clip_size=2"}});
  EXPECT_EQ(from_set.rfind("--set data.transform.clip_size=2: data.transform.clip_size:", 0), 0u) << from_set;
  write_text(dir.file("c.json"), R"({"weights": [{"path": "x", "format": "onnx"}]})");
  const std::string listed = error_of({{dir.file("c.json")}, {}});
  EXPECT_EQ(listed.rfind(dir.file("c.json") + ": weights[0].format: expected hf", 0), 0u) << listed;
  // A default at fault has no source to name.
  EXPECT_EQ(error_of({{dir.file("b.json")}, {}}), "");
}

TEST(Config, InvalidJsonNamesFileLineAndColumn) {
  TempDir dir;
  write_text(dir.file("bad.json"), "{\n  \"runtime\": {\n    \"threads\": 2,\n  }\n}\n");
  const std::string e = error_of({{dir.file("bad.json")}, {}});
  EXPECT_NE(e.find(dir.file("bad.json") + ":4:"), std::string::npos) << e;
  EXPECT_NE(e.find("invalid JSON"), std::string::npos) << e;
  EXPECT_EQ(e.find('\n'), std::string::npos) << "one line: " << e;
}

TEST(Config, MissingFileIsNamed) {
  const std::string e = error_of({{"/nonexistent/cfg.json"}, {}});
  EXPECT_EQ(e, "/nonexistent/cfg.json: no such file");
}

TEST(Config, TopLevelMustBeAnObject) {
  TempDir dir;
  write_text(dir.file("list.json"), "[1, 2]");
  const std::string e = error_of({{dir.file("list.json")}, {}});
  EXPECT_NE(e.find("must hold a JSON object"), std::string::npos) << e;
}

TEST(Config, NearestKeyOnlySuggestsCloseNames) {
  EXPECT_EQ(nearest_key("lr", {"lr_min", "lr", "warmup"}), "lr");
  EXPECT_EQ(nearest_key("devise", {"threads", "device", "seed"}), "device");
  EXPECT_EQ(nearest_key("completely_different", {"seed", "device"}), "");
}

TEST(Config, WriteConfigIsReadableBack) {
  TempDir dir;
  RunConfig cfg;
  cfg.runtime.seed = 5;
  write_config(to_json(cfg), dir.path());
  RunConfig back;
  resolve_config(back, {{dir.file("config.json")}, {}});
  EXPECT_EQ(back.runtime.seed, 5);
}

TEST(Config, ListKeysCoversEveryLeafWithADoc) {
  RunConfig cfg;
  const auto keys = list_keys(cfg);
  ASSERT_GT(keys.size(), 6u);
  EXPECT_EQ(keys[0].first, "runtime.threads");
  std::set<std::string> names;
  for (const auto& [key, doc] : keys) {
    EXPECT_FALSE(doc.empty()) << key;
    names.insert(key);
  }
  for (const char* key : {"load.allow_missing", "model.use_sam", "model.decoder.arch", "model.sam.global_attn_indexes",
                          "model.qformer.num_query_tokens", "weights"}) {
    EXPECT_TRUE(names.count(key)) << key;
  }
}

TEST(GenerateConfig, PresetsAndHfFilesReadIntoOneSection) {
  testing::TempDir dir;
  // Every shipped preset is a {"generate": ...} layer that validates.
  for (const char* name : {"greedy", "lavis", "msmedcap"}) {
    const auto g = read_generate_file(std::string(MSMEDCAP_SOURCE_DIR) + "/configs/generate/" + name + ".json");
    EXPECT_EQ(g.eos_token_id, 50118) << name;
  }
  // HF's flat form: booleans and null as HF writes them, HF's defaults for what it leaves out.
  testing::write_text(dir.file("hf.json"), R"({"num_beams": 4, "early_stopping": true, "eos_token_id": null})");
  const auto hf = read_generate_file(dir.file("hf.json"));
  EXPECT_EQ(hf.num_beams, 4);
  EXPECT_EQ(hf.early_stopping, "true");
  EXPECT_EQ(hf.eos_token_id, GenerateConfig::kNoEos);
  EXPECT_EQ(hf.pad_token_id, 1);
  EXPECT_EQ(to_json(GenerateConfig::from_hf_json(hf.to_hf_json(), "back")), to_json(hf));  // export round trip
  EXPECT_TRUE(hf.to_hf_json()["eos_token_id"].is_null());
  // The same settings as a preset give the same section.
  testing::write_text(
      dir.file("preset.json"),
      R"({"generate": {"num_beams": 4, "early_stopping": "true", "eos_token_id": -2, "pad_token_id": 1}})");
  EXPECT_EQ(to_json(read_generate_file(dir.file("preset.json"))), to_json(hf));
  // Errors name the file and the key.
  testing::write_text(dir.file("typo.json"), R"({"num_beam": 4})");
  try {
    read_generate_file(dir.file("typo.json"));
    FAIL() << "an unknown key must be refused";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("typo.json: unknown key 'num_beam' (did you mean 'num_beams'?)"),
              std::string::npos)
        << e.what();
  }
  testing::write_text(dir.file("beams.json"), R"({"generate": {"num_beams": 0}})");
  try {
    read_generate_file(dir.file("beams.json"));
    FAIL() << "num_beams 0 must be refused";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("generate.num_beams: must be >= 1, got 0"), std::string::npos) << e.what();
  }
}

TEST(GenerateConfig, IsARunConfigSectionLayeredAndOverridden) {
  RunConfig cfg;
  ConfigSources sources;
  sources.files = {std::string(MSMEDCAP_SOURCE_DIR) + "/configs/generate/lavis.json"};
  sources.overrides = {"generate.num_beams=2", "generate.early_stopping=never"};
  const auto resolved = resolve_config(cfg, sources);
  EXPECT_EQ(cfg.generate.num_beams, 2);
  EXPECT_EQ(cfg.generate.min_new_tokens, 1);  // from the preset
  EXPECT_EQ(cfg.generate.early_stopping, "never");
  EXPECT_EQ(resolved["generate"]["num_beams"], 2);  // what a run saves
  RunConfig bad;
  ConfigSources wrong;
  wrong.overrides = {"generate.top_p=0"};
  EXPECT_THROW(resolve_config(bad, wrong), Error);
}

}  // namespace
}  // namespace msmedcap::config
