// Retrieval recall on hand-built score matrices.
#include <gtest/gtest.h>

#include <torch/torch.h>

#include "msmedcap/inference/retrieval.h"

namespace msmedcap::inference {
namespace {

TEST(Retrieval, RecallCountsTheBestRankOfAnImagesTexts) {
  // Texts 0 and 1 describe image 0, text 2 image 1, text 3 image 2.
  const std::vector<int64_t> text_image = {0, 0, 1, 2};
  RetrievalScores s;
  s.i2t = torch::tensor({{0.1, 0.9, 0.5, 0.2},    // image 0: text 1 first -> rank 0
                         {0.8, 0.1, 0.5, 0.3},    // image 1: text 2 second -> rank 1
                         {0.9, 0.8, 0.7, 0.1}});  // image 2: text 3 last -> rank 3
  s.t2i = torch::tensor({{0.2, 0.9, 0.1},         // text 0 -> image 0 at rank 1
                         {0.9, 0.2, 0.1},         // text 1 -> rank 0
                         {0.5, 0.5, 0.9},         // text 2 -> image 1 at rank 2
                         {0.1, 0.2, 0.3}});       // text 3 -> image 2 at rank 0
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

}  // namespace
}  // namespace msmedcap::inference
