// Image decoding through OpenCV (8/16-bit, grey/colour), errors, the DICOM window function and
// the augmentation and SAM-from-CLIP quirk of the transforms.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include <opencv2/imgcodecs.hpp>
#include <torch/torch.h>

#include "msmedcap/core/check.h"
#include "msmedcap/data/image_io.h"
#include "msmedcap/data/opencv_image.h"
#include "msmedcap/data/transforms.h"
#include "test_utils.h"

namespace msmedcap {
namespace {

TEST(ImageIo, Png8And16BitGreyAndColour) {
  testing::TempDir dir;
  cv::Mat grey16(4, 5, CV_16UC1);
  for (int i = 0; i < 20; ++i) grey16.ptr<uint16_t>()[i] = static_cast<uint16_t>(i * 3000);
  ASSERT_TRUE(cv::imwrite(dir.file("g16.png"), grey16));
  const auto g = data::decode_image(dir.file("g16.png"));
  EXPECT_EQ(g.bits, 16);
  EXPECT_EQ(g.format, "png");
  ASSERT_EQ(g.pixels.channels(), 1);
  EXPECT_FLOAT_EQ(g.pixels.data()[7], 21000.0f / 65535.0f);

  cv::Mat bgr(3, 2, CV_8UC3, cv::Scalar(10, 20, 30));  // OpenCV order: B, G, R
  ASSERT_TRUE(cv::imwrite(dir.file("c8.png"), bgr));
  ASSERT_TRUE(cv::imwrite(dir.file("c8.tiff"), bgr));
  for (const char* name : {"c8.png", "c8.tiff"}) {
    const auto c = data::decode_image(dir.file(name));
    ASSERT_EQ(c.pixels.channels(), 3);
    const float* px = c.pixels.row(1) + 3;           // column 1
    EXPECT_FLOAT_EQ(px[0], 30.0f / 255.0f) << name;  // RGB order out
    EXPECT_FLOAT_EQ(px[2], 10.0f / 255.0f) << name;
  }
  cv::Mat bgra(2, 2, CV_8UC4, cv::Scalar(0, 0, 255, 7));
  ASSERT_TRUE(cv::imwrite(dir.file("a.png"), bgra));
  EXPECT_EQ(data::decode_image(dir.file("a.png")).pixels.channels(), 3);  // alpha dropped
}

TEST(ImageIo, JpegDecodes) {
  testing::TempDir dir;
  cv::Mat img(16, 24, CV_8UC1, cv::Scalar(128));
  ASSERT_TRUE(cv::imwrite(dir.file("x.jpg"), img));
  const auto d = data::decode_image(dir.file("x.jpg"));
  EXPECT_EQ(d.format, "jpeg");
  EXPECT_NEAR(d.pixels.row(5)[5], 128.0f / 255.0f, 2.0f / 255.0f);
}

TEST(ImageIo, BadFilesGiveOneLineErrorsNamingTheFile) {
  testing::TempDir dir;
  testing::write_text(dir.file("corrupt.png"), "\x89PNG\r\n\x1a\n garbage");
  testing::write_text(dir.file("empty.jpg"), "");
  std::string dicm(128, '\0');
  dicm += "DICM truncated";
  testing::write_text(dir.file("trunc.dcm"), dicm);
  for (const char* name : {"corrupt.png", "empty.jpg", "trunc.dcm", "missing.png"}) {
    try {
      data::decode_image(dir.file(name));
      FAIL() << name << " must be refused";
    } catch (const Error& e) {
      const std::string msg = e.what();
      EXPECT_NE(msg.find(name), std::string::npos) << msg;
      EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
    }
  }
}

TEST(ImageIo, CutShortPngAndNonFiniteFloatTiffAreRefusedByName) {
  testing::TempDir dir;
  cv::Mat grey(16, 16, CV_8UC1, cv::Scalar(7));
  ASSERT_TRUE(cv::imwrite(dir.file("whole.png"), grey));
  const std::string png = testing::read_text(dir.file("whole.png"));
  EXPECT_EQ(data::decode_image(dir.file("whole.png")).pixels.rows(), 16);
  const std::vector<std::pair<std::string, std::string>> cut{
      {png.substr(0, png.size() - 12), "ends before its IEND chunk"},
      {png.substr(0, png.size() - 20), "chunk runs past the end"}};
  for (const auto& [bytes, error] : cut) {
    testing::write_text(dir.file("cut.png"), bytes);
    try {
      data::decode_image(dir.file("cut.png"));
      FAIL() << "a PNG cut short must be refused";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(dir.file("cut.png") + ": truncated PNG"), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find(error), std::string::npos) << e.what();
    }
  }
  // One NaN or infinite pixel: minMaxLoc alone would pass over the NaN.
  for (const float bad : {std::nanf(""), std::numeric_limits<float>::infinity()}) {
    cv::Mat f(8, 8, CV_32FC1, cv::Scalar(0.25));
    f.at<float>(3, 4) = bad;
    ASSERT_TRUE(cv::imwrite(dir.file("f.tiff"), f));
    try {
      data::decode_image(dir.file("f.tiff"));
      FAIL() << bad << " in a float TIFF must be refused";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("f.tiff: image holds NaN or infinite values"), std::string::npos)
          << e.what();
    }
  }
}

TEST(ImageIo, WindowFunctionFollowsDicomAndParsing) {
  const data::Window w{40, 400};
  EXPECT_EQ(data::apply_window(-160.5, w), 0.0);  // <= c - 0.5 - (w-1)/2
  EXPECT_EQ(data::apply_window(240.0, w), 1.0);   // > c - 0.5 + (w-1)/2
  EXPECT_NEAR(data::apply_window(39.5, w), 0.5, 1e-12);
  // Monotone and continuous across the range.
  double prev = -1;
  for (double x = -300; x <= 300; x += 0.25) {
    const double y = data::apply_window(x, w);
    EXPECT_GE(y, prev);
    prev = y;
  }
  EXPECT_EQ(data::apply_window(0.4, data::Window{1, 1}), 0.0);  // width 1: a threshold
  EXPECT_EQ(data::apply_window(0.6, data::Window{1, 1}), 1.0);
  const auto p = data::parse_window("-600,1500");
  EXPECT_EQ(p.center, -600);
  EXPECT_EQ(p.width, 1500);
  for (const char* bad : {"40", "40,", "a,b", "40,0", "40,400,1", "40;400"})
    EXPECT_THROW(data::parse_window(bad), Error) << bad;
}

TEST(Transforms, ResizeKeepsConstantsAndIdentity) {
  const auto c = torch::full({3, 17, 29}, 0.25f);
  for (auto f : {data::ResizeFilter::kBicubic, data::ResizeFilter::kBilinear}) {
    EXPECT_LT((data::resize(c, 8, 40, f) - 0.25f).abs().max().item<float>(), 1e-6);
    const auto x = torch::rand({3, 9, 11});
    EXPECT_TRUE(torch::allclose(data::resize(x, 9, 11, f), x));
  }
}

TEST(Transforms, SamShapePaddingAndLongestSide) {
  EXPECT_EQ(data::sam_resized_shape(37, 53, 1024), (std::pair<int64_t, int64_t>{715, 1024}));
  EXPECT_EQ(data::sam_resized_shape(600, 400, 1024), (std::pair<int64_t, int64_t>{1024, 683}));
  config::ImageTransformConfig cfg;
  cfg.sam_size = 64;
  const auto out = data::sam_transform(torch::full({3, 20, 40}, 0.5f), cfg);
  ASSERT_EQ(out.sizes(), (std::vector<int64_t>{3, 64, 64}));
  EXPECT_EQ(out.narrow(1, 32, 32).abs().max().item<float>(), 0.0f);  // padded bottom
  EXPECT_NEAR(out[0][0][0].item<float>(), (0.5f - 0.485f) / 0.229f, 1e-5);
}

TEST(Transforms, SamMaskKeepsOnePixelStructuresWhenShrinking) {
  config::ImageTransformConfig cfg;
  cfg.sam_size = 64;
  // A 128 x 96 mask (ids / 255, as image_to_tensor reads an 8-bit PNG): anatomy 3 over the top
  // half, a one-pixel lesion (id 10) at an odd position, which nearest neighbour would skip.
  auto ids = torch::zeros({1, 96, 128});
  ids.narrow(1, 0, 48).fill_(3);
  ids[0][31][77] = 10;
  const auto out = data::sam_mask_transform(ids / 255.0, cfg);
  ASSERT_EQ(out.sizes(), (std::vector<int64_t>{64, 64}));
  EXPECT_EQ(out[15][38].item<int64_t>(), 10);  // the 2 x 2 block holding (31, 77)
  EXPECT_EQ(out.eq(10).sum().item<int64_t>(), 1);
  EXPECT_EQ(out.eq(3).sum().item<int64_t>(), 24 * 64 - 1);
  EXPECT_EQ(out.narrow(0, 48, 16).abs().max().item<int64_t>(), 0);  // padded bottom
  // Enlarging stays nearest neighbour: every source pixel becomes a 2 x 2 block.
  cfg.sam_size = 256;
  const auto big = data::sam_mask_transform(ids / 255.0, cfg);
  EXPECT_EQ(big.eq(10).sum().item<int64_t>(), 4);
  EXPECT_EQ(big[62][154].item<int64_t>(), 10);
}

TEST(Transforms, AugmentationIsSeededAndFlipIsOffByDefault) {
  config::ImageTransformConfig cfg;
  cfg.clip_size = 16;
  const auto image = torch::rand({3, 40, 50});
  std::mt19937_64 a(1), b(1);
  EXPECT_TRUE(torch::equal(data::clip_transform(image, cfg, &a), data::clip_transform(image, cfg, &b)));
  EXPECT_FALSE(cfg.hflip);
  cfg.augment = true;
  std::mt19937_64 r1(5), r2(5), r3(6);
  const auto x1 = data::clip_transform(image, cfg, &r1);
  EXPECT_TRUE(torch::equal(x1, data::clip_transform(image, cfg, &r2)));
  EXPECT_FALSE(torch::equal(x1, data::clip_transform(image, cfg, &r3)));
  for (int k = 0; k < 200; ++k) {
    std::mt19937_64 rng(k);
    const auto box = data::random_resized_crop_box(40, 50, 0.5, 1.0, rng);
    EXPECT_GE(box.top, 0);
    EXPECT_GE(box.left, 0);
    EXPECT_LE(box.top + box.height, 40);
    EXPECT_LE(box.left + box.width, 50);
    EXPECT_GE(box.height * box.width, 0.5 * 2000 * 0.9);
  }
}

TEST(Transforms, SamFromClipTensorWrapsLikeAUint8Cast) {
  config::ImageTransformConfig cfg;
  cfg.sam_size = 4;
  // -0.5 * 255 = -127.5 -> -127 -> 129 (mod 256); 0.5 * 255 = 127.5 -> 127.
  const auto clip = torch::tensor({-0.5f, 0.5f}).repeat({3, 2, 1}).view({3, 2, 2});
  const auto sam = data::sam_from_clip_tensor(clip, cfg);
  const auto expect = [&](float byte, int c) {
    const float mean[3] = {0.485f, 0.456f, 0.406f}, std[3] = {0.229f, 0.224f, 0.225f};
    return (byte / 255.0f - mean[c]) / std[c];
  };
  // 2x2 -> 4x4: the top-left output pixel is the -0.5 input (bilinear, upscale).
  EXPECT_NEAR(sam[0][0][0].item<float>(), expect(129.0f, 0), 1e-4);
  EXPECT_NEAR(sam[1][0][3].item<float>(), expect(127.0f, 1), 1e-4);
}

}  // namespace
}  // namespace msmedcap

namespace msmedcap {
namespace {

TEST(ImageIo, RetiredJpegSyntaxesAreDecodedByOurDecoderToo) {
  // The extended-JPEG fixture relabelled with the retired syntax .53 (extended, processes 3 and
  // 5): GDCM would hand it to its own JPEG codec, which leaked on such a file (found by
  // fuzz_image); ours decodes it to the same pixels.
  testing::TempDir dir;
  std::string bytes = testing::read_text(testing::data_path("images/JPEG-lossy.dcm"));
  const size_t at = bytes.find("1.2.840.10008.1.2.4.51");
  ASSERT_NE(at, std::string::npos);
  bytes[at + 21] = '3';
  testing::write_text(dir.file("retired.dcm"), bytes);
  const auto expect = data::decode_image(testing::data_path("images/JPEG-lossy.dcm")).pixels;
  EXPECT_EQ(cv::norm(data::mat_view(data::decode_image(dir.file("retired.dcm")).pixels), data::mat_view(expect),
                     cv::NORM_INF),
            0.0);
}

/// Inputs that made Debian's GDCM abort (assertions compiled in) or read out of bounds before the
/// structural checks: found by mutating the test files and by fuzzing (see src/data/image_io.cpp).
/// Each must now be a one-line error.
TEST(ImageIo, MalformedDicomRegressionsAreErrorsNotAborts) {
  testing::TempDir dir;
  const std::string ct = testing::read_text(testing::data_path("images/CT_small.dcm"));
  const std::string rgb = testing::read_text(testing::data_path("images/SC_rgb_jpeg_gdcm.dcm"));
  struct Case {
    std::string name, bytes, expect;
  };
  std::vector<Case> cases;
  auto patch = [](std::string b, size_t at, std::string with) { return b.replace(at, with.size(), with); };
  cases.push_back({"vr_unknown.dcm", patch(ct, 325, "M"), "invalid VR"});         // AE -> AM
  cases.push_back({"vr_control.dcm", patch(rgb, 136, "\n"), "invalid VR"});       // file meta UL -> \nL
  cases.push_back({"item_overrun.dcm", patch(ct, 1035, "A"), "item runs past"});  // item length 0x411c
  cases.push_back({"bits1.dcm", patch(ct, 3318, std::string("\x01\x00", 2)), "1-bit pixels"});
  cases.push_back({"truncated.dcm", ct.substr(0, ct.size() - 100), "runs past the end"});
  // Photometric Interpretation MONOCHROME2 -> "PALETTE COL" without lookup tables: GDCM asserted
  // (found by fuzz_image).
  cases.push_back(
      {"palette_without_lut.dcm", patch(ct, 3252, "PALETTE COL "), "PALETTE COLOR images are not supported"});
  // A marker's 0xFF overwritten, so bytes lie between the JPEG header's segments: libjpeg warns,
  // and GDCM asserted on the warning (found by fuzz_image). Our header walk skips them as libjpeg
  // does and finds the scan before any frame header.
  cases.push_back({"jpeg_extraneous.dcm", patch(rgb, 1354, std::string(1, '\0')),
                   "JPEG header: a scan (SOS) before any frame header"});
  // Rows 128 -> 256: GDCM's raw codec would read 32 KiB past the pixel data (found by fuzz_image).
  cases.push_back(
      {"rows_beyond_data.dcm", patch(ct, 3272, std::string("\x00\x01", 2)), "fewer than 256 rows x 128 columns"});
  cases.push_back({"meta_only.dcm", ct.substr(0, 138), "truncated element header"});
  // The JPEG file's Pixel Data (undefined length) with VR OF: GDCM's element reader asserted
  // (found by fuzz_image after 265 367 executions).
  cases.push_back({"pixel_data_vr.dcm", patch(rgb, 1312, "OF"), "element (7FE0,0010) of undefined length has VR OF"});
  // An RLE header declaring 3 segments for 16-bit grey pixels (2 byte planes): GDCM's RLE codec
  // read out of bounds on such headers (found by fuzz_image after 526 238 executions); RLE is
  // decoded by msmedcap now.
  const std::string rle = testing::read_text(testing::data_path("images/MR_small_RLE.dcm"));
  cases.push_back({"rle_segments.dcm", patch(rle, 1536, std::string("\x03", 1)), "RLE header declares 3 segments"});
  // Photometric Interpretation MONOCHROME2 -> YBR_CHROME2, a term that does not exist: GDCM's image
  // helper asserted (found by fuzz_image, 2026-12-01, third session).
  cases.push_back({"ybr_chrome.dcm", patch(rle, 1366, "YBR_CHROME2"),
                   "Photometric Interpretation 'YBR_CHROME2' (0028,0004) is not supported"});
  // The JPEG fragments' sequence delimiter with length 39 instead of 0: GDCM's fragment reader
  // asserted (found by fuzz_image, 2026-12-02, fourth session). The 39 bytes follow it.
  cases.push_back({"fragments_delimiter_length.dcm", patch(rgb, 5200, std::string("\x27", 1)) + std::string(39, '\0'),
                   "sequence delimiter with length 39 (must be 0)"});
  // Rows with VR CS instead of US: GDCM's typed attribute asserted on the VR (found by fuzz_image).
  cases.push_back({"rows_vr.dcm", patch(ct, 3268, "CS"), "element (0028,0010) has VR CS, not US"});
  // Image Type (0008,0008) renumbered Recognition Code (0008,0010), VR SH: GDCM asserted that its
  // value names ACR-NEMA (found by fuzz_image after 384 780 executions).
  cases.push_back({"recognition_code.dcm", patch(patch(ct, 356, std::string("\x10", 1)), 358, "SH"),
                   "Recognition Code (0008,0010) 'ORIGINAL\\PRIMARY\\AXIAL' is not an ACR-NEMA one"});
  // The extended (12-bit) JPEG's frame header with sample precision 65: libjpeg refuses it and
  // GDCM's JPEG16 codec asserted (found by fuzz_image, 2026-12-01).
  const std::string lossy = testing::read_text(testing::data_path("images/JPEG-lossy.dcm"));
  cases.push_back({"jpeg_precision.dcm", patch(lossy, 3012, "A"), "JPEG header: sample precision 65 is not supported"});
  // An Adobe colour transform libjpeg does not know (0 -> 7) made GDCM abort the same way. It only
  // warns about the header, and this file is lossless (never colour-converted): it decodes as before.
  testing::write_text(dir.file("jpeg_adobe_transform.dcm"), patch(rgb, 1353, std::string(1, '\x07')));
  EXPECT_EQ(cv::norm(data::mat_view(data::decode_image(dir.file("jpeg_adobe_transform.dcm")).pixels),
                     data::mat_view(data::decode_image(testing::data_path("images/SC_rgb_jpeg_gdcm.dcm")).pixels),
                     cv::NORM_INF),
            0.0);
  for (const auto& c : cases) {
    testing::write_text(dir.file(c.name), c.bytes);
    try {
      data::decode_image(dir.file(c.name));
      FAIL() << c.name << " must be refused";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(c.expect), std::string::npos) << c.name << ": " << e.what();
      EXPECT_NE(std::string(e.what()).find(c.name), std::string::npos) << e.what();
    }
  }
}

}  // namespace
}  // namespace msmedcap
