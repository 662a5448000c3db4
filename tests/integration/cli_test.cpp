// The msmedcap binary end to end: inspect (table and JSON), config resolution and its errors,
// exit codes (0 ok, 1 error, 2 usage) and one-line error messages.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "msmedcap/config/fields.h"
#include "msmedcap/io/tensor_store.h"
#include "test_utils.h"

namespace msmedcap {
namespace {

using msmedcap::testing::count_lines;
using msmedcap::testing::fixture_path;
using msmedcap::testing::run_msmedcap;
using msmedcap::testing::TempDir;
using msmedcap::testing::write_text;

TEST(CliInspect, JsonListsEveryTensorOfAFixture) {
  const std::string path = fixture_path("tiny_msmedcap_opt/model.safetensors");
  const auto r = run_msmedcap("inspect --json " + path);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto j = config::Json::parse(r.out);
  const auto store = io::TensorStore::open(path);
  ASSERT_EQ(j["tensors"].size(), store.names().size());
  uint64_t total = 0;
  for (const auto& t : j["tensors"]) {
    const auto& info = store.info(t["name"].get<std::string>());
    EXPECT_EQ(t["dtype"], io::dtype_name(info.dtype));
    EXPECT_EQ(t["shape"].get<std::vector<int64_t>>(), info.shape);
    total += info.num_bytes();
  }
  EXPECT_EQ(j["total_bytes"].get<uint64_t>(), total);
  EXPECT_TRUE(j["metadata"].is_object());
  EXPECT_TRUE(store.contains("sam_query_tokens"));
}

TEST(CliInspect, TableEndsWithTotals) {
  const auto r = run_msmedcap("inspect " + fixture_path("tiny_sam/model.safetensors"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out.rfind("name", 0), 0u);
  EXPECT_NE(r.out.find("vision_encoder.neck.conv1.weight"), std::string::npos);
  EXPECT_NE(r.out.find(" tensors, "), std::string::npos);
}

TEST(CliInspect, ShardedDirectory) {
  TempDir dir;
  io::StateDict tensors;
  for (int i = 0; i < 4; ++i) tensors["w" + std::to_string(i)] = at::ones({32});
  io::save_sharded(dir.path(), tensors, 256);
  const auto r = run_msmedcap("inspect --json " + dir.path());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto j = config::Json::parse(r.out);
  EXPECT_EQ(j["tensors"].size(), 4u);
  EXPECT_EQ(j["files"].size(), 2u);
  EXPECT_EQ(j["metadata"]["total_size"], "512");
}

TEST(CliInspect, MalformedFileExitsOneWithOneLine) {
  TempDir dir;
  write_text(dir.file("bad.safetensors"), std::string("\x10\0\0\0\0\0\0\0{\"a\":", 13));
  const auto r = run_msmedcap("inspect " + dir.file("bad.safetensors"));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(count_lines(r.err), 1u) << r.err;
  EXPECT_EQ(r.err.rfind("msmedcap: error: " + dir.file("bad.safetensors") + ": ", 0), 0u) << r.err;
}

TEST(CliInspect, MissingFileExitsOne) {
  const auto r = run_msmedcap("inspect /nonexistent/model.safetensors");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("/nonexistent/model.safetensors: cannot open"), std::string::npos) << r.err;
}

TEST(CliUsage, MissingArgumentAndUnknownCommandExitTwo) {
  EXPECT_EQ(run_msmedcap("inspect").exit_code, 2);
  EXPECT_EQ(run_msmedcap("no-such-command").exit_code, 2);
  EXPECT_EQ(run_msmedcap("").exit_code, 2);
  const auto help = run_msmedcap("--help");
  EXPECT_EQ(help.exit_code, 0);
  EXPECT_NE(help.out.find("inspect"), std::string::npos);
  const auto version = run_msmedcap("--version");
  EXPECT_EQ(version.exit_code, 0);
  EXPECT_NE(version.out.find("LibTorch"), std::string::npos);
  EXPECT_NE(version.out.find("components: " + core::components_built() + ")"), std::string::npos) << version.out;
}

TEST(CliConfig, LayersFilesSetAndFlags) {
  TempDir dir;
  write_text(dir.file("a.json"), R"({"runtime": {"threads": 1, "seed": 3}})");
  const auto r = run_msmedcap("config -c " + dir.file("a.json") + " --set runtime.seed=9 --threads 2 --log-level warn");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto j = config::Json::parse(r.out);
  EXPECT_EQ(j["runtime"]["threads"], 2);
  EXPECT_EQ(j["runtime"]["seed"], 9);
  EXPECT_EQ(j["runtime"]["log_level"], "warn");
}

TEST(CliConfig, UnknownKeyExitsOneNamingNearestKey) {
  const auto r = run_msmedcap("config --set runtime.treads=2");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(count_lines(r.err), 1u) << r.err;
  EXPECT_NE(r.err.find("unknown key 'runtime.treads' (did you mean 'runtime.threads'?)"), std::string::npos) << r.err;
}

TEST(CliConfig, CudaDeviceWithoutCudaIsRejectedWhereItIsUsed) {
  // The config command only resolves: a CUDA device name is valid config on any machine.
  const auto r = run_msmedcap("config --device cuda:0");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(run_msmedcap("config --device tpu").exit_code, 1);
}

TEST(CliConfig, KeysListsEveryKeyWithItsMeaning) {
  const auto r = run_msmedcap("config --keys");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("runtime.threads"), std::string::npos);
  EXPECT_NE(r.out.find("load.allow_missing"), std::string::npos);
}

}  // namespace
}  // namespace msmedcap

namespace msmedcap {
namespace {

TEST(CliSynth, WritesSplitsAndImages) {
  msmedcap::testing::TempDir dir;
  const auto r =
      msmedcap::testing::run_msmedcap("synth --out " + dir.file("synth") + " --n 20 --seed 1 --image-size 64");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("[synth]"), std::string::npos);
  for (const char* f : {"train.jsonl", "val.jsonl", "test.jsonl", "images/synth_00019.png"}) {
    EXPECT_TRUE(std::filesystem::exists(dir.file(std::string("synth/") + f))) << f;
  }
  EXPECT_EQ(msmedcap::testing::run_msmedcap("synth --out " + dir.file("x") + " --n 0").exit_code, 2);
}

}  // namespace
}  // namespace msmedcap
