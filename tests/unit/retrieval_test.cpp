// Retrieval recall on hand-built score matrices, and attention overlays on hand-built maps.
#include <gtest/gtest.h>
#include <opencv2/imgcodecs.hpp>

#include <torch/torch.h>

#include "msmedcap/inference/attention_maps.h"
#include "msmedcap/inference/retrieval.h"

namespace msmedcap::inference {
namespace {

TEST(Retrieval, RecallCountsTheBestRankOfAnImagesTexts) {
  // Texts 0 and 1 describe image 0, text 2 image 1, text 3 image 2.
  const std::vector<int64_t> text_image = {0, 0, 1, 2};
  RetrievalScores s;
  s.i2t = torch::tensor({{0.1, 0.9, 0.5, 0.2},     // image 0: text 1 first -> rank 0
                         {0.8, 0.1, 0.5, 0.3},     // image 1: text 2 second -> rank 1
                         {0.9, 0.8, 0.7, 0.1}});   // image 2: text 3 last -> rank 3
  s.t2i = torch::tensor({{0.2, 0.9, 0.1},          // text 0 -> image 0 at rank 1
                         {0.9, 0.2, 0.1},          // text 1 -> rank 0
                         {0.5, 0.5, 0.9},          // text 2 -> image 1 at rank 2
                         {0.1, 0.2, 0.3}});        // text 3 -> image 2 at rank 0
  const auto m = retrieval_recall(s, text_image);
  EXPECT_NEAR(m.at("txt_r1"), 100.0 / 3, 1e-12);
  EXPECT_NEAR(m.at("txt_r5"), 100.0, 1e-12);
  EXPECT_NEAR(m.at("img_r1"), 50.0, 1e-12);
  EXPECT_NEAR(m.at("img_r5"), 100.0, 1e-12);
  EXPECT_NEAR(m.at("r_mean"), ((100.0 / 3 + 200) / 3 + 250.0 / 3) / 2, 1e-12);
  // Ties keep the lower index first: image 0 and 1 tie for text 2, image 1 loses to image 0.
  s.t2i[2] = torch::tensor({0.5, 0.5, 0.1});
  EXPECT_NEAR(retrieval_recall(s, text_image).at("img_r1"), 50.0, 1e-12);
  EXPECT_THROW(retrieval_recall(s, {0, 0, 1}), std::exception);
}

TEST(AttentionMaps, HotCellIsRedAndPaddingIsCut) {
  const cv::Mat grey(40, 80, CV_32FC1, cv::Scalar(0.5f));
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
