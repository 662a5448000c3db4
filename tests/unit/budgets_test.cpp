// Reliability budgets and hostile inputs (issue 19): images whose header declares more pixels
// than data.transform.max_image_pixels, files over the size budget, FIFOs and devices where an
// image should be, DICOM pixel descriptions GDCM asserts on, JSON nested past the depth budget in
// every reader, a CSV quote that swallows rows, attention-map names that collide, captions over
// the metrics' word budget, LibTorch's stack dumps, and a source with no samples named by file.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <string>

#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <ATen/ATen.h>
#include <opencv2/imgcodecs.hpp>

#include "msmedcap/config/config_io.h"
#include "msmedcap/core/check.h"
#include "msmedcap/core/error_text.h"
#include "msmedcap/data/datasets.h"
#include "msmedcap/data/image_io.h"
#include "msmedcap/data/mixture.h"
#include "msmedcap/data/tokenizer.h"
#include "msmedcap/inference/batch_caption.h"
#include "msmedcap/io/tensor_store.h"
#include "msmedcap/metrics/evaluate.h"
#include "test_utils.h"

namespace msmedcap {
namespace {

namespace fs = std::filesystem;

using testing::error_of;

std::string encoded(const std::string& ext, int width, int height) {
  cv::Mat m(height, width, CV_8UC3, cv::Scalar(10, 120, 230));
  std::vector<uchar> buf;
  EXPECT_TRUE(cv::imencode(ext, m, buf));
  return std::string(buf.begin(), buf.end());
}

TEST(ImageBudget, EveryFormatsHeaderSizeIsCheckedBeforeDecoding) {
  // 40 x 30 = 1200 pixels: decoded with a budget of 1200, refused at 1199 with the header's size,
  // which shows each format's header is read correctly.
  for (const std::string ext : {".png", ".jpg", ".bmp", ".tiff"}) {
    const std::string bytes = encoded(ext, 40, 30);
    data::DecodeOptions o;
    o.max_pixels = 1200;
    const auto image = data::decode_image_bytes(bytes, "x" + ext, o);
    EXPECT_EQ(image.pixels.cols(), 40) << ext;
    EXPECT_EQ(image.pixels.rows(), 30) << ext;
    o.max_pixels = 1199;
    const std::string e = error_of([&] { data::decode_image_bytes(bytes, "x" + ext, o); });
    EXPECT_NE(e.find("x" + ext + ": 40 x 30 pixels exceed data.transform.max_image_pixels (1199)"), std::string::npos)
        << e;
  }
}

TEST(ImageBudget, PixelBombIsRefusedByItsHeader) {
  // A PNG that declares 30000 x 30000 pixels (its IHDR patched): refused before OpenCV would
  // allocate gigabytes, under the default budget.
  std::string png = encoded(".png", 8, 8);
  for (int at : {16, 20}) {
    png[at] = 0;
    png[at + 1] = 0;
    png[at + 2] = static_cast<char>(30000 >> 8);
    png[at + 3] = static_cast<char>(30000 & 255);
  }
  const std::string e = error_of([&] { data::decode_image_bytes(png, "bomb.png"); });
  EXPECT_NE(e.find("bomb.png: 30000 x 30000 pixels exceed data.transform.max_image_pixels (100000000)"),
            std::string::npos)
      << e;
  // The largest sizes a PNG can declare: their product overflows 64 bits, which once let the
  // check pass (found by fuzz_image under UBSan).
  for (int at = 16; at < 24; ++at) png[at] = static_cast<char>(0xFF);
  EXPECT_NE(error_of([&] { data::decode_image_bytes(png, "huge.png"); }).find("4294967295 x 4294967295 pixels exceed"),
            std::string::npos);
  // The same for a JPEG's frame header (SOF0 patched to 60000 x 60000).
  std::string jpg = encoded(".jpg", 8, 8);
  const size_t sof = jpg.find("\xFF\xC0");
  ASSERT_NE(sof, std::string::npos);
  for (size_t at : {sof + 5, sof + 7}) {
    jpg[at] = static_cast<char>(0xEA);
    jpg[at + 1] = static_cast<char>(0x60);
  }
  EXPECT_NE(error_of([&] { data::decode_image_bytes(jpg, "bomb.jpg"); }).find("60000 x 60000 pixels exceed"),
            std::string::npos);
  // A format none of the readers knows is refused, not handed to OpenCV's other decoders.
  EXPECT_NE(error_of([&] { data::decode_image_bytes(encoded(".ppm", 4, 4), "x.ppm"); }).find("not a decodable image"),
            std::string::npos);
}

TEST(ImageBudget, FifosDevicesAndLargeFilesAreRefusedBeforeReading) {
  testing::TempDir dir;
  // A FIFO with no writer: opening it for reading would block for ever.
  ASSERT_EQ(::mkfifo(dir.file("pipe.png").c_str(), 0600), 0);
  std::string e = error_of([&] { data::decode_image(dir.file("pipe.png")); });
  EXPECT_NE(e.find("pipe.png: not a regular file (a FIFO); refused"), std::string::npos) << e;
  // A link to /dev/zero: an endless read.
  fs::create_symlink("/dev/zero", dir.file("zero.png"));
  e = error_of([&] { data::decode_image(dir.file("zero.png")); });
  EXPECT_NE(e.find("zero.png: not a regular file (a device); refused"), std::string::npos) << e;
  fs::create_directories(dir.file("folder.png"));
  EXPECT_NE(error_of([&] { data::decode_image(dir.file("folder.png")); }).find("(a folder)"), std::string::npos);
  // The size budget: a 2 MiB file with a 1 MiB budget.
  testing::write_text(dir.file("big.png"), std::string(2 << 20, 'x'));
  data::DecodeOptions o;
  o.max_bytes = 1 << 20;
  e = error_of([&] { data::decode_image(dir.file("big.png"), o); });
  EXPECT_NE(e.find("big.png: 2 MiB exceed data.transform.max_image_mb (1)"), std::string::npos) << e;
  EXPECT_NE(error_of([&] { data::decode_image(dir.file("missing.png")); }).find("missing.png: cannot open"),
            std::string::npos);
}

TEST(ImageBudget, DicomPixelDescriptionsGdcmAssertsOnAreNamedErrors) {
  testing::TempDir dir;
  const std::string ct = testing::read_text(testing::data_path("images/CT_small.dcm"));
  auto patch = [&](size_t at, const std::string& with) { return std::string(ct).replace(at, with.size(), with); };
  const auto us = [](int v) { return std::string{static_cast<char>(v & 255), static_cast<char>(v >> 8)}; };
  struct Case {
    std::string name, bytes, expect;
  };
  // Offsets in CT_small.dcm: Samples per Pixel 3242, Photometric Interpretation 3252 (12 bytes),
  // Rows 3272, Bits Stored 3328, High Bit 3338.
  const std::vector<Case> cases = {
      {"spp0.dcm", patch(3242, us(0)), "0 samples per pixel (0028,0002) are not supported"},
      {"spp2.dcm", patch(3242, us(2)), "2 samples per pixel"},
      {"spp5.dcm", patch(3242, us(5)), "5 samples per pixel"},
      {"spp3_grey.dcm", patch(3242, us(3)), "Photometric Interpretation MONOCHROME2 with 3 samples per pixel"},
      {"ybr_one_sample.dcm", patch(3252, "YBR_FULL    "), "Photometric Interpretation YBR_FULL with 1 samples"},
      {"unknown_pi.dcm", patch(3252, "HSV         "), "Photometric Interpretation 'HSV' (0028,0004) is not supported"},
      {"stored17.dcm", patch(3328, us(17)), "Bits Stored 17 (0028,0101) outside 1..16"},
      {"stored0.dcm", patch(3328, us(0)), "Bits Stored 0"},
      {"high14.dcm", patch(3338, us(14)), "High Bit 14 (0028,0102) is not Bits Stored - 1 (15)"},
      {"rows0.dcm", patch(3272, us(0)), "no Rows (0028,0010) or Columns"},
  };
  for (const auto& c : cases) {
    testing::write_text(dir.file(c.name), c.bytes);
    const std::string e = error_of([&] { data::decode_image(dir.file(c.name)); });
    EXPECT_NE(e.find(c.expect), std::string::npos) << c.name << ": " << e;
    EXPECT_NE(e.find(c.name), std::string::npos) << e;
  }
  // The pixel budget applies to DICOM too (128 x 128 per frame).
  data::DecodeOptions o;
  o.max_pixels = 128 * 128 - 1;
  EXPECT_NE(error_of([&] {
              data::decode_image(testing::data_path("images/CT_small.dcm"), o);
            }).find("128 x 128 pixels exceed data.transform.max_image_pixels"),
            std::string::npos);
  o.max_pixels = 128 * 128;
  EXPECT_EQ(data::decode_image(testing::data_path("images/CT_small.dcm"), o).pixels.rows(), 128);
}

TEST(JsonDepth, EveryReaderRefusesDeepNestingWithoutCrashing) {
  testing::TempDir dir;
  const std::string deep = std::string(100000, '[') + std::string(100000, ']');
  const std::string budget = "JSON nested deeper than 100 levels";
  // A config file (the line is named).
  testing::write_text(dir.file("deep.json"), "{\"a\":\n" + deep + "}");
  std::string e = error_of([&] { config::read_json_file(dir.file("deep.json")); });
  EXPECT_NE(e.find("deep.json:2: " + budget), std::string::npos) << e;
  // 100 levels are fine; brackets inside strings do not count.
  testing::write_text(dir.file("ok.json"), "{\"s\": \"" + std::string(500, '[') + "\", \"a\": " + std::string(99, '[') +
                                               std::string(99, ']') + "}");
  EXPECT_NO_THROW(config::read_json_file(dir.file("ok.json")));
  // A LAVIS annotation file.
  testing::write_text(dir.file("ann.json"), deep);
  config::DatasetSourceConfig lavis;
  lavis.format = "lavis";
  lavis.root = dir.path();
  lavis.annotations = "ann.json";
  e = error_of([&] { data::read_dataset(lavis); });
  EXPECT_NE(e.find("ann.json:1: " + budget), std::string::npos) << e;
  // A JSONL row: malformed, so an error naming the line (or a counted skip).
  testing::write_text(dir.file("rows.jsonl"), "{\"image\": \"a.png\", \"caption\": \"x\"}\n" + deep + "\n");
  config::DatasetSourceConfig jsonl = lavis;
  jsonl.format = "jsonl";
  jsonl.annotations = "rows.jsonl";
  e = error_of([&] { data::read_dataset(jsonl); });
  EXPECT_NE(e.find("rows.jsonl:2: " + budget), std::string::npos) << e;
  jsonl.skip_malformed = true;
  data::ReadReport report;
  EXPECT_EQ(data::read_dataset(jsonl, &report).size(), 1u);
  EXPECT_EQ(report.skipped, 1);
  // A safetensors header.
  std::string header = "{\"x\":" + deep + "}";
  std::string file(8, '\0');
  for (int i = 0; i < 8; ++i) file[i] = static_cast<char>((header.size() >> (8 * i)) & 255);
  testing::write_text(dir.file("deep.safetensors"), file + header);
  e = error_of([&] { io::TensorStore::open(dir.file("deep.safetensors")); });
  EXPECT_NE(e.find("deep.safetensors header:1: " + budget), std::string::npos) << e;
  // A tokenizer's tokenizer.json.
  fs::create_directories(dir.file("tok"));
  testing::write_text(dir.file("tok/tokenizer.json"), deep);
  EXPECT_NE(error_of([&] { data::load_tokenizer(dir.file("tok")); }).find(budget), std::string::npos);
}

TEST(CsvQuotes, AStrayQuoteIsAnErrorNamingItsLine) {
  // Row 2's field opens a quote that closes inside row 3: before, row 3 vanished into row 2's
  // caption (exit 0, one record fewer).
  const std::string text = "image,caption\na.png,\"stray, quote\nb.png,\"fine\"\nc.png,ok\n";
  const std::string e = error_of([&] { data::parse_csv(text, "t.csv"); });
  EXPECT_NE(e.find("t.csv:2: the quoted field opened here closes on line 3 with more text after its closing quote"),
            std::string::npos)
      << e;
  // A legitimately multi-line quoted field: rows keep the line they start on.
  std::vector<size_t> lines;
  const auto rows = data::parse_csv("image,caption\n\"a.png\",\"two\nlines\"\nb.png,x\n", "t.csv", &lines);
  ASSERT_EQ(rows.size(), 3u);
  EXPECT_EQ(lines, (std::vector<size_t>{1, 2, 4}));
}

TEST(MixtureErrors, AHeaderOnlyCsvNamesItsFile) {
  testing::TempDir dir;
  testing::write_text(dir.file("only_header.csv"), "image,caption\n");
  config::DatasetConfig cfg;
  config::DatasetSourceConfig s;
  s.format = "csv";
  s.root = dir.path();
  s.annotations = "only_header.csv";
  cfg.sources = {s};
  const std::string e = error_of([&] { data::Mixture m(cfg); });
  EXPECT_NE(e.find("csv source " + dir.file("only_header.csv") + ": no samples (0 rows skipped)"), std::string::npos)
      << e;
}

TEST(AttentionMapNames, DistinctIdsNeverShareAFile) {
  EXPECT_NE(inference::file_safe("a b"), inference::file_safe("a_b"));
  EXPECT_NE(inference::file_safe("a%20b"), inference::file_safe("a b"));
  EXPECT_EQ(inference::file_safe("scan.png"), "scan.png");
  EXPECT_EQ(inference::file_safe("../x"), "..%2Fx");
  EXPECT_NE(inference::file_safe(""), inference::file_safe("_"));
}

TEST(MetricsBudget, CaptionsOverTheWordBudgetAreRefusedByLine) {
  testing::TempDir dir;
  std::string words;
  for (int i = 0; i < 1001; ++i) words += "mass ";
  testing::write_text(dir.file("pred.jsonl"),
                      "{\"id\": 1, \"caption\": \"fine\"}\n{\"id\": 2, \"caption\": \"" + words + "\"}\n");
  const std::string e = error_of([&] { metrics::read_predictions(dir.file("pred.jsonl")); });
  EXPECT_NE(e.find("pred.jsonl:2: \"caption\" has 1001 words, more than the metrics' 1000"), std::string::npos) << e;
}

TEST(ErrorText, LibTorchErrorsLoseTheirStackAndLongMessagesAreCut) {
  try {
    (void)at::ones({2}).view({3});
    FAIL();
  } catch (const std::exception& e) {
    const std::string text = core::error_text(e);
    EXPECT_EQ(text.find('\n'), std::string::npos) << text;
    EXPECT_NE(text.find("shape '[3]' is invalid"), std::string::npos) << text;
  }
  // LibTorch built with its stack traces appends them on the lines after the message.
  const std::runtime_error traced(
      "shape '[3]' is invalid\nException raised from view at aten/src/ATen/...\nframe #0: ...");
  EXPECT_EQ(core::error_text(traced), "shape '[3]' is invalid");
  const std::string cut = core::one_line(std::string(5000, 'v') + "\nsecond line");
  EXPECT_EQ(cut, std::string(1000, 'v') + "... (4000 more characters)");
}

TEST(TestHarness, TheAddressSpaceCapOfScriptsTestShIsInForce) {
  // scripts/test.sh exports MSMEDCAP_TEST_VMEM_KB; tests/test_main.cpp turns it into RLIMIT_AS,
  // which the msmedcap processes the tests start inherit.
  const char* kb = std::getenv("MSMEDCAP_TEST_VMEM_KB");
  if (kb == nullptr || std::string(kb).empty() || std::string(kb) == "0") GTEST_SKIP() << "run without the cap";
  rlimit limit{};
  ASSERT_EQ(getrlimit(RLIMIT_AS, &limit), 0);
  EXPECT_EQ(limit.rlim_cur, static_cast<rlim_t>(std::strtoull(kb, nullptr, 10)) * 1024);
  // An allocation past it fails here instead of swapping the machine.
  EXPECT_THROW((void)at::empty({static_cast<int64_t>(limit.rlim_cur / 4) + 1}, at::kFloat), std::exception);
}

}  // namespace
}  // namespace msmedcap
