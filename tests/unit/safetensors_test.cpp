// safetensors reader/writer: round trips for every dtype, the Python byte layout, sharded
// checkpoints, and a corpus of malformed files that must each give a clear one-line error.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>

#include "msmedcap/core/check.h"
#include "msmedcap/io/safetensors.h"
#include "msmedcap/io/tensor_store.h"
#include "test_utils.h"

namespace msmedcap::io {
namespace {

using msmedcap::testing::read_text;
using msmedcap::testing::TempDir;
using msmedcap::testing::write_text;

/// A file image with a hand-written header (padded to 8 bytes) and data section.
std::string handmade(const std::string& header, const std::string& data) {
  std::string h = header;
  h.append((8 - h.size() % 8) % 8, ' ');
  std::string out(8, '\0');
  uint64_t n = h.size();
  for (int i = 0; i < 8; ++i, n >>= 8) out[i] = static_cast<char>(n & 0xff);
  return out + h + data;
}

std::string error_of(const std::string& bytes) {
  try {
    SafetensorsFile::from_bytes(bytes, "bad.safetensors");
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(Safetensors, WriterMatchesPythonLayout) {
  // Python safetensors sorts by dtype (descending enum order: I64 before F32), then by name,
  // writes __metadata__ first, compact JSON, and pads the header with spaces to 8 bytes.
  const int64_t c = 7;
  const float a = 1.5f;
  const float b[2] = {2.0f, -3.0f};
  const std::string bytes = serialize_safetensors(
      {{"b", DType::F32, {2}, b}, {"a", DType::F32, {1}, &a}, {"c", DType::I64, {1}, &c}}, {{"format", "pt"}});
  const std::string header = R"({"__metadata__":{"format":"pt"},"c":{"dtype":"I64","shape":[1],"data_offsets":[0,8]},)"
                             R"("a":{"dtype":"F32","shape":[1],"data_offsets":[8,12]},)"
                             R"("b":{"dtype":"F32","shape":[2],"data_offsets":[12,20]}})";
  std::string padded = header;
  padded.append((8 - padded.size() % 8) % 8, ' ');
  ASSERT_EQ(bytes.size(), 8 + padded.size() + 20);
  EXPECT_EQ(bytes.substr(8, padded.size()), padded);
  uint64_t n = 0;
  std::memcpy(&n, bytes.data(), 8);
  EXPECT_EQ(n, padded.size());
  EXPECT_EQ(std::memcmp(bytes.data() + 8 + padded.size(), &c, 8), 0);
}

TEST(Safetensors, RawRoundTripForEveryDtype) {
  std::vector<RawTensor> tensors;
  std::vector<std::vector<uint8_t>> buffers;
  const DType all[] = {DType::BOOL, DType::U8,  DType::I8,  DType::F8_E5M2, DType::F8_E4M3,
                       DType::I16,  DType::U16, DType::F16, DType::BF16,    DType::I32,
                       DType::U32,  DType::F32, DType::F64, DType::I64,     DType::U64};
  for (const DType d : all) {
    std::vector<uint8_t> data(6 * dtype_size(d));
    for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<uint8_t>(i * 37 + 11);
    if (d == DType::BOOL) {
      for (auto& x : data) x &= 1;
    }
    buffers.push_back(std::move(data));
  }
  for (size_t i = 0; i < std::size(all); ++i) {
    tensors.push_back({std::string("t_") + dtype_name(all[i]), all[i], {2, 3}, buffers[i].data()});
  }
  tensors.push_back({"scalar", DType::F32, {}, buffers[11].data()});
  tensors.push_back({"empty", DType::F32, {0, 4}, nullptr});
  TempDir dir;
  write_safetensors(dir.file("all.safetensors"), tensors, {{"format", "pt"}, {"k", "v"}});
  const SafetensorsFile file(dir.file("all.safetensors"));
  EXPECT_EQ(file.tensors().size(), tensors.size());
  ASSERT_EQ(file.metadata().size(), 2u);
  EXPECT_EQ(file.metadata()[1].second, "v");
  for (size_t i = 0; i < std::size(all); ++i) {
    const TensorInfo* info = file.find(std::string("t_") + dtype_name(all[i]));
    ASSERT_NE(info, nullptr);
    EXPECT_EQ(info->dtype, all[i]);
    EXPECT_EQ(info->shape, (std::vector<int64_t>{2, 3}));
    EXPECT_EQ(std::memcmp(file.data(*info), buffers[i].data(), buffers[i].size()), 0) << dtype_name(all[i]);
  }
  EXPECT_EQ(file.find("scalar")->shape.size(), 0u);
  EXPECT_EQ(file.find("empty")->num_bytes(), 0u);
  // Re-serialising what was read reproduces the file byte for byte.
  std::vector<RawTensor> again;
  for (const auto& t : file.tensors()) again.push_back({t.name, t.dtype, t.shape, file.data(t)});
  EXPECT_EQ(serialize_safetensors(again, file.metadata()), read_text(dir.file("all.safetensors")));
}

TEST(Safetensors, TorchRoundTripForEveryTorchDtype) {
  StateDict tensors;
  at::manual_seed(1);
  const auto base = at::randn({3, 4}) * 100;
  tensors["f64"] = base.to(at::kDouble);
  tensors["f32"] = base;
  tensors["f16"] = base.to(at::kHalf);
  tensors["bf16"] = base.to(at::kBFloat16);
  tensors["i64"] = base.to(at::kLong);
  tensors["i32"] = base.to(at::kInt);
  tensors["i16"] = base.to(at::kShort);
  tensors["i8"] = base.clamp(-100, 100).to(at::kChar);
  tensors["u8"] = base.abs().clamp(0, 255).to(at::kByte);
  tensors["bool"] = base > 0;
  tensors["strided"] = base.t();  // non-contiguous input is written contiguously
  TempDir dir;
  save_safetensors(dir.file("t.safetensors"), tensors);
  const TensorStore store = TensorStore::open(dir.file("t.safetensors"));
  ASSERT_EQ(store.names().size(), tensors.size());
  for (const auto& [name, t] : tensors) {
    const auto back = store.view(name);
    EXPECT_EQ(back.scalar_type(), t.scalar_type()) << name;
    EXPECT_TRUE(at::equal(back, t)) << name;
  }
  ASSERT_EQ(store.metadata().size(), 1u);
  EXPECT_EQ(store.metadata()[0].first, "format");
}

TEST(Safetensors, ViewsStayPrivateToTheProcess) {
  TempDir dir;
  save_safetensors(dir.file("t.safetensors"), {{"x", at::ones({4})}});
  const std::string before = read_text(dir.file("t.safetensors"));
  {
    const TensorStore store = TensorStore::open(dir.file("t.safetensors"));
    auto v = store.view("x");
    v.mul_(5);  // copy-on-write pages: allowed, and never reaches the file
    EXPECT_EQ(v.sum().item<float>(), 20.0f);
  }
  EXPECT_EQ(read_text(dir.file("t.safetensors")), before);
}

TEST(Safetensors, MisalignedTensorIsCopiedCorrectly) {
  // A 3-byte U8 tensor first puts the F32 tensor at an odd address.
  const float values[2] = {1.25f, -7.5f};
  std::string data = std::string("\x01\x02\x03", 3);
  data.append(reinterpret_cast<const char*>(values), sizeof(values));
  const std::string image = handmade(
      R"({"a":{"dtype":"U8","shape":[3],"data_offsets":[0,3]},"b":{"dtype":"F32","shape":[2],"data_offsets":[3,11]}})",
      data);
  TempDir dir;
  write_text(dir.file("m.safetensors"), image);
  const TensorStore store = TensorStore::open(dir.file("m.safetensors"));
  const auto b = store.view("b");
  EXPECT_FLOAT_EQ(b[0].item<float>(), 1.25f);
  EXPECT_FLOAT_EQ(b[1].item<float>(), -7.5f);
}

TEST(Safetensors, ReadGivesTheFileValuesInEveryDtypeAndAtEveryAlignment) {
  // read() takes two paths: pread into a prefaulted tensor (same dtype) and a conversion from the
  // mapped bytes. A 3 MiB tensor crosses a 2 MiB page; a misaligned one and an empty one too.
  const auto big = at::randn({768, 1024});
  const float values[2] = {1.25f, -7.5f};
  std::string data = std::string("\x01\x02\x03", 3);
  data.append(reinterpret_cast<const char*>(values), sizeof(values));
  TempDir dir;
  save_safetensors(dir.file("big.safetensors"),
                   {{"big", big}, {"half", big.to(at::kHalf)}, {"none", at::ones({0, 4})}});
  write_text(dir.file("m.safetensors"), handmade(R"({"a":{"dtype":"U8","shape":[3],"data_offsets":[0,3]},)"
                                                 R"("b":{"dtype":"F32","shape":[2],"data_offsets":[3,11]}})",
                                                 data));
  const TensorStore store = TensorStore::open(dir.file("big.safetensors"));
  EXPECT_TRUE(at::equal(store.read("big", at::kFloat, at::kCPU), big));
  EXPECT_TRUE(at::equal(store.read("big", at::kHalf, at::kCPU), big.to(at::kHalf)));
  EXPECT_TRUE(at::equal(store.read("half", at::kFloat, at::kCPU), big.to(at::kHalf).to(at::kFloat)));
  EXPECT_TRUE(at::equal(store.read("half", at::kBFloat16, at::kCPU), big.to(at::kHalf).to(at::kBFloat16)));
  EXPECT_EQ(store.read("none", at::kFloat, at::kCPU).sizes(), (std::vector<int64_t>{0, 4}));
  const TensorStore odd = TensorStore::open(dir.file("m.safetensors"));
  EXPECT_TRUE(at::equal(odd.read("b", at::kFloat, at::kCPU), at::tensor({1.25f, -7.5f})));
  EXPECT_TRUE(at::equal(odd.read("a", at::kByte, at::kCPU), at::tensor({1, 2, 3}, at::kByte)));
}

TEST(Safetensors, ShareGivesTheFilePagesWhereNoConversionIsNeeded) {
  const auto big = at::randn({768, 1024});
  TempDir dir;
  const std::string path = dir.file("s.safetensors");
  save_safetensors(path, {{"big", big}, {"half", big.to(at::kHalf)}});
  const std::string before = read_text(path);
  const TensorStore store = TensorStore::open(path);
  const auto shared = store.share("big", at::kFloat, at::kCPU);
  EXPECT_TRUE(at::equal(shared, big));
  EXPECT_EQ(shared.data_ptr(), store.view("big").data_ptr());  // the mapping itself, not a copy
  const auto half = store.share("half", at::kHalf, at::kCPU);
  EXPECT_EQ(half.data_ptr(), store.view("half").data_ptr());
  // A conversion is a copy of its own.
  const auto widened = store.share("half", at::kFloat, at::kCPU);
  EXPECT_NE(widened.data_ptr(), store.view("half").data_ptr());
  EXPECT_TRUE(at::equal(widened, big.to(at::kHalf).to(at::kFloat)));
  // Writing to a shared tensor stays in this process (copy on write): the file is unchanged.
  shared.mul_(3);
  EXPECT_TRUE(at::equal(shared, big * 3));
  EXPECT_EQ(read_text(path), before);
  EXPECT_TRUE(at::equal(TensorStore::open(path).read("big", at::kFloat, at::kCPU), big));
}

TEST(Safetensors, FileCutShortAfterOpeningIsAClearError) {
  TempDir dir;
  const std::string path = dir.file("cut.safetensors");
  save_safetensors(path, {{"a", at::ones({16})}, {"b", at::ones({1024})}});
  const TensorStore store = TensorStore::open(path);
  std::filesystem::resize_file(path, std::filesystem::file_size(path) - 2048);
  try {
    store.read("b", at::kFloat, at::kCPU);
    FAIL() << "no error";
  } catch (const Error& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find(path), std::string::npos) << what;
    EXPECT_NE(what.find("shorter than when it was opened"), std::string::npos) << what;
  }
}

struct Malformed {
  const char* what;
  std::string bytes;
  const char* expected;
};

std::vector<Malformed> malformed_corpus() {
  const std::string f32x2(8, '\0');
  const std::string good_header = R"({"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
  std::string huge(8, '\0');
  const uint64_t big = 200'000'000;
  std::memcpy(huge.data(), &big, 8);
  huge += "{}";
  std::string beyond = handmade(good_header, f32x2);
  beyond[0] = static_cast<char>(beyond[0] + 64);  // header length now reaches past the end
  const std::string full = handmade(good_header, f32x2);
  return {
      {"empty file", "", "shorter than the 8-byte header length"},
      {"4 bytes", "abcd", "shorter than the 8-byte header length"},
      {"huge header", huge, "exceeds the 100000000-byte limit"},
      {"header beyond file", beyond, "reaches beyond the end of the file"},
      {"truncated data", full.substr(0, full.size() - 3), "reach beyond the data section"},
      {"bad JSON", handmade(R"({"x": {"dtype": )", ""), "header is not valid JSON"},
      {"not an object", handmade("[1, 2]", ""), "does not start with a JSON object"},
      {"invalid UTF-8", handmade("{\"\xff\xfe\":1}", ""), "header is not valid JSON"},
      {"unknown dtype", handmade(R"({"x":{"dtype":"F17","shape":[2],"data_offsets":[0,8]}})", f32x2),
       "unknown dtype 'F17'"},
      {"shape/size mismatch", handmade(R"({"x":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", f32x2),
       "F32 shape [3] needs 12 bytes but data_offsets [0, 8] span 8"},
      {"overlap",
       handmade(
           R"({"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"y":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
           f32x2),
       "overlap tensor"},
      {"out of range offsets", handmade(R"({"x":{"dtype":"F32","shape":[2],"data_offsets":[100,108]}})", f32x2),
       "reach beyond the data section"},
      {"gap", handmade(R"({"x":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", f32x2),
       "4 unaccounted bytes before tensor 'x'"},
      {"trailing bytes", handmade(good_header, f32x2 + "junk"),
       "4 bytes after the last tensor are not described by the header"},
      {"duplicate name",
       handmade(
           R"({"x":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"x":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
           f32x2),
       "header lists 'x' twice"},
      {"negative dim", handmade(R"({"x":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", f32x2),
       "expected a non-negative integer"},
      {"overflowing shape",
       handmade(R"({"x":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,8]}})", f32x2),
       "overflows 64-bit byte counts"},
      {"reversed offsets", handmade(R"({"x":{"dtype":"F32","shape":[0],"data_offsets":[8,0]}})", f32x2),
       "end before they begin"},
      {"missing field", handmade(R"({"x":{"dtype":"F32","shape":[2]}})", f32x2),
       "entry needs dtype, shape and data_offsets"},
      {"metadata not strings", handmade(R"({"__metadata__":{"k":1}})", ""), "__metadata__['k'] must be a string"},
      {"offsets not a pair", handmade(R"({"x":{"dtype":"F32","shape":[2],"data_offsets":[0]}})", f32x2),
       "data_offsets must be [begin, end]"},
  };
}

TEST(Safetensors, MalformedFilesGiveClearOneLineErrors) {
  for (const auto& m : malformed_corpus()) {
    const std::string e = error_of(m.bytes);
    EXPECT_NE(e.find(m.expected), std::string::npos) << m.what << ": got '" << e << "'";
    EXPECT_EQ(e.rfind("bad.safetensors: ", 0), 0u) << m.what << ": " << e;
    EXPECT_EQ(e.find('\n'), std::string::npos) << m.what << ": " << e;
  }
}

TEST(Safetensors, MissingFileAndDirectoryErrorsNameThePath) {
  EXPECT_THROW(SafetensorsFile("/nonexistent/x.safetensors"), Error);
  TempDir dir;
  try {
    TensorStore::open(dir.path());
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("holds neither model.safetensors"), std::string::npos);
  }
}

TEST(Safetensors, UnsupportedTorchDtypeIsAnErrorNotACrash) {
  const uint32_t v[2] = {1, 2};
  TempDir dir;
  write_safetensors(dir.file("u.safetensors"), {{"u", DType::U32, {2}, v}});
  const TensorStore store = TensorStore::open(dir.file("u.safetensors"));
  EXPECT_THROW(store.view("u"), Error);
}

TEST(Sharded, SaveAndLoadThroughTheIndex) {
  StateDict tensors;
  for (int i = 0; i < 5; ++i) tensors["layer." + std::to_string(i)] = at::full({16}, float(i));
  TempDir dir;
  const auto files = save_sharded(dir.path(), tensors, /*max_shard_bytes=*/128);
  ASSERT_EQ(files.size(), 4u);  // 3 shards (2 + 2 + 1 tensors) and the index
  EXPECT_EQ(files.back(), dir.file(kIndexFileName));
  const TensorStore store = TensorStore::open(dir.path());
  EXPECT_EQ(store.files().size(), 3u);
  for (const auto& [name, t] : tensors) EXPECT_TRUE(at::equal(store.view(name), t)) << name;
  ASSERT_EQ(store.metadata().size(), 1u);
  EXPECT_EQ(store.metadata()[0], (std::pair<std::string, std::string>{"total_size", "320"}));
  EXPECT_EQ(store.file_of("layer.4"), dir.file("model-00003-of-00003.safetensors"));
}

TEST(Sharded, OneShardIsAPlainModelFile) {
  TempDir dir;
  const auto files = save_sharded(dir.path(), {{"a", at::ones({2})}}, 1 << 20);
  ASSERT_EQ(files.size(), 1u);
  EXPECT_EQ(files[0], dir.file(kWeightsFileName));
  EXPECT_TRUE(TensorStore::open(dir.path()).contains("a"));
}

TEST(Sharded, BrokenIndexesAreRejected) {
  TempDir dir;
  save_safetensors(dir.file("s1.safetensors"), {{"a", at::ones({2})}});
  auto expect_error = [&](const std::string& index, const std::string& expected) {
    write_text(dir.file(kIndexFileName), index);
    try {
      TensorStore::open(dir.path());
      ADD_FAILURE() << "no error for " << index;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(expected), std::string::npos) << e.what();
    }
  };
  expect_error(R"({"weight_map": {"a": "missing.safetensors"}})", "missing.safetensors: cannot open");
  expect_error(R"({"weight_map": {"b": "s1.safetensors"}})",
               "tensor 'b' is mapped to s1.safetensors, which does not hold it");
  expect_error(R"({"weight_map": {"a": "../s1.safetensors"}})", "is not a file name in the checkpoint directory");
  expect_error(R"({"metadata": {}})", "missing \"weight_map\" object");
  expect_error(R"({"weight_map": )", "invalid JSON");
  save_safetensors(dir.file("s2.safetensors"), {{"a", at::ones({2})}});
  expect_error(R"({"weight_map": {"a": "s1.safetensors", "x": "s2.safetensors"}})", "");
}

TEST(Sharded, TensorInTwoShardsIsRejected) {
  TempDir dir;
  save_safetensors(dir.file("s1.safetensors"), {{"a", at::ones({2})}});
  save_safetensors(dir.file("s2.safetensors"), {{"a", at::ones({2})}, {"b", at::ones({1})}});
  write_text(dir.file(kIndexFileName), R"({"weight_map": {"a": "s1.safetensors", "b": "s2.safetensors"}})");
  try {
    TensorStore::open(dir.path());
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("tensor 'a' appears in both"), std::string::npos) << e.what();
  }
}

TEST(Describe, ListsTensorsAndTotals) {
  TempDir dir;
  save_safetensors(dir.file("t.safetensors"), {{"w", at::zeros({2, 3})}, {"i", at::zeros({4}, at::kLong)}});
  const auto j = describe(TensorStore::open(dir.file("t.safetensors")));
  ASSERT_EQ(j["tensors"].size(), 2u);
  EXPECT_EQ(j["tensors"][0]["name"], "i");  // data order: I64 first
  EXPECT_EQ(j["tensors"][1]["shape"], config::Json::array({2, 3}));
  EXPECT_EQ(j["total_bytes"], 4 * 8 + 6 * 4);
  EXPECT_EQ(j["total_parameters"], 10);
  EXPECT_EQ(j["metadata"]["format"], "pt");
}

}  // namespace
}  // namespace msmedcap::io
