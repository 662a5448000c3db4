// Attention overlays on hand-built maps (component opencv).
#include <gtest/gtest.h>
#include <opencv2/imgcodecs.hpp>

#include <algorithm>

#include <torch/torch.h>

#include "msmedcap/inference/attention_maps.h"

namespace msmedcap::inference {
namespace {

TEST(AttentionMaps, HotCellIsRedAndPaddingIsCut) {
  data::Image grey(40, 80, 1);
  std::fill(grey.data(), grey.data() + grey.size(), 0.5f);
  // A 4x4 grid whose valid part (left half of the columns: a wide image padded square) is hot in
  // its top-left cell.
  auto map = torch::zeros({4, 4});
  map[0][0] = 1.0;
  map[3][3] = 5.0;  // padding: must not count
  const std::string png = attention_overlay_png(grey, map, 1.0, 0.5);
  const cv::Mat img = cv::imdecode(std::vector<uchar>(png.begin(), png.end()), cv::IMREAD_COLOR);
  ASSERT_EQ(img.rows, 40);
  ASSERT_EQ(img.cols, 80);
  const auto hot = img.at<cv::Vec3b>(2, 2), cold = img.at<cv::Vec3b>(37, 77);
  EXPECT_GT(hot[2], hot[0]);    // red over blue where attention is highest
  EXPECT_GT(cold[0], cold[2]);  // blue where it is lowest
  EXPECT_THROW(attention_overlay_png(grey, torch::zeros({4}), 1, 1), std::exception);
}

}  // namespace
}  // namespace msmedcap::inference
