// DICOM decoding against pydicom + numpy (tests/golden/make_dicom_golden.py) and the branch
// transforms against PyTorch's antialiased interpolate (tests/golden/make_transform_golden.py).
#include <gtest/gtest.h>

#include <opencv2/core.hpp>
#include <torch/torch.h>

#include "msmedcap/config/data_config.h"
#include "msmedcap/data/image_io.h"
#include "msmedcap/data/transforms.h"
#include "msmedcap/io/tensor_store.h"
#include "test_utils.h"

namespace msmedcap {
namespace {

torch::Tensor decoded(const std::string& file, std::optional<data::Window> window = std::nullopt) {
  data::DecodeOptions o;
  o.window = window;
  const auto img = data::decode_image(testing::data_path("images/" + file), o);
  return data::image_to_tensor(img.pixels).narrow(0, 0, img.pixels.channels()).permute({1, 2, 0}).contiguous();
}

TEST(ImageGolden, DicomEqualsPydicomWithRescaleAndWindow) {
  const auto golden = io::TensorStore::open(testing::data_path("images/dicom_golden.safetensors"));
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"CT_small", "CT_small.dcm"},         {"MR_small", "MR_small.dcm"},
      {"MR_small_RLE", "MR_small_RLE.dcm"}, {"MR_small_bigendian", "MR_small_bigendian.dcm"},
      {"MR_small_implicit", "MR_small_implicit.dcm"}};
  for (const auto& [name, file] : cases) {
    const auto expect = golden.view(name);
    const auto got = decoded(file);
    ASSERT_EQ(got.sizes(), expect.sizes()) << name;
    EXPECT_LT((got - expect).abs().max().item<float>(), 1e-6) << name;
  }
  const auto got = decoded("CT_small.dcm", data::Window{40, 400});
  EXPECT_LT((got - golden.view("CT_small_w40_400")).abs().max().item<float>(), 1e-6);
}

TEST(ImageGolden, DicomFactsAreReported) {
  const auto ct = data::decode_image(testing::data_path("images/CT_small.dcm"));
  EXPECT_EQ(ct.format, "dicom");
  EXPECT_EQ(ct.intercept, -1024);
  EXPECT_EQ(ct.slope, 1);
  EXPECT_EQ(ct.window_source, "minmax");
  const auto mr = data::decode_image(testing::data_path("images/MR_small.dcm"));
  ASSERT_TRUE(mr.window.has_value());
  EXPECT_EQ(mr.window->center, 600);
  EXPECT_EQ(mr.window->width, 1600);
  EXPECT_EQ(mr.window_source, "file");
}

TEST(ImageGolden, CompressedDicomDecodes) {
  // JPEG lossy (12-bit grey) and JPEG baseline RGB: shape, range and a non-flat image.
  const auto jpeg = data::decode_image(testing::data_path("images/JPEG-lossy.dcm"));
  EXPECT_EQ(jpeg.pixels.rows, 1024);
  EXPECT_EQ(jpeg.pixels.cols, 256);
  EXPECT_EQ(jpeg.pixels.channels(), 1);
  const auto rgb = data::decode_image(testing::data_path("images/SC_rgb_jpeg_gdcm.dcm"));
  EXPECT_EQ(rgb.pixels.channels(), 3);
  for (const auto* img : {&jpeg, &rgb}) {
    double lo = 0, hi = 0;
    cv::minMaxLoc(img->pixels.reshape(1), &lo, &hi);
    EXPECT_GE(lo, 0.0);
    EXPECT_LE(hi, 1.0);
    EXPECT_GT(hi - lo, 0.5);
  }
}

TEST(ImageGolden, TransformsEqualTorchAntialiasedInterpolate) {
  const auto golden = io::TensorStore::open(testing::data_path("images/transform_golden.safetensors"));
  const auto image = data::image_to_tensor(data::decode_image(testing::data_path("images/transform_input.png")).pixels);
  ASSERT_EQ(image.sizes(), (std::vector<int64_t>{3, 37, 53}));
  for (int64_t s : {24, 80}) {
    config::ImageTransformConfig cfg;
    cfg.clip_size = s;
    const auto got = data::clip_transform(image, cfg);
    EXPECT_LT((got - golden.view("clip_" + std::to_string(s))).abs().max().item<float>(), 2e-5) << s;
  }
  for (int64_t s : {32, 96}) {
    config::ImageTransformConfig cfg;
    cfg.sam_size = s;
    const auto got = data::sam_transform(image, cfg);
    EXPECT_LT((got - golden.view("sam_" + std::to_string(s))).abs().max().item<float>(), 2e-5) << s;
  }
}

}  // namespace
}  // namespace msmedcap
