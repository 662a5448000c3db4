#include "msmedcap/inference/attention_maps.h"

#include "msmedcap/core/components.h"

#if MSMEDCAP_WITH_OPENCV
#include <ATen/ATen.h>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include <algorithm>
#include <cmath>

#include "msmedcap/core/check.h"
#include "msmedcap/data/opencv_image.h"
#endif

namespace msmedcap::inference {

#if MSMEDCAP_WITH_OPENCV

std::string attention_overlay_png(const data::Image& image, const at::Tensor& map, double valid_rows, double valid_cols,
                                  int max_side) {
  MSMEDCAP_CHECK(map.dim() == 2 && map.numel() > 0, "attention map: expected [h, w], got ", map.sizes());
  MSMEDCAP_CHECK(!image.empty() && (image.channels() == 1 || image.channels() == 3),
                 "attention map: expected a grey or RGB image");
  // The picture, 8-bit BGR, longest side capped.
  cv::Mat picture;
  data::mat_view(image).convertTo(picture, CV_8U, 255.0);
  if (picture.channels() == 1) {
    cv::cvtColor(picture, picture, cv::COLOR_GRAY2BGR);
  } else {
    cv::cvtColor(picture, picture, cv::COLOR_RGB2BGR);
  }
  const double scale = std::min(1.0, static_cast<double>(max_side) / std::max(picture.rows, picture.cols));
  if (scale < 1.0) cv::resize(picture, picture, cv::Size(), scale, scale, cv::INTER_AREA);
  // The grid cells that covered the image, resized over it.
  const auto grid = map.to(at::kFloat).contiguous().cpu();
  const int gh = static_cast<int>(grid.size(0)), gw = static_cast<int>(grid.size(1));
  const int rows = std::clamp(static_cast<int>(std::ceil(gh * valid_rows - 1e-9)), 1, gh);
  const int cols = std::clamp(static_cast<int>(std::ceil(gw * valid_cols - 1e-9)), 1, gw);
  cv::Mat cells(gh, gw, CV_32FC1, const_cast<float*>(grid.data_ptr<float>()));
  cv::Mat heat;
  cv::resize(cells(cv::Rect(0, 0, cols, rows)).clone(), heat, picture.size(), 0, 0, cv::INTER_LINEAR);
  double lo = 0, hi = 0;
  cv::minMaxLoc(heat, &lo, &hi);
  heat = hi > lo ? (heat - lo) / (hi - lo) : cv::Mat::zeros(heat.size(), CV_32FC1);
  cv::Mat heat8, colour, blended;
  heat.convertTo(heat8, CV_8U, 255.0);
  cv::applyColorMap(heat8, colour, cv::COLORMAP_JET);
  cv::addWeighted(picture, 0.5, colour, 0.5, 0.0, blended);
  std::vector<uchar> png;
  MSMEDCAP_CHECK(cv::imencode(".png", blended, png), "attention map: PNG encoding failed");
  return std::string(png.begin(), png.end());
}

#else

std::string attention_overlay_png(const data::Image&, const at::Tensor&, double, double, int) {
  core::fail_built_without(core::Component::kOpenCv, "drawing attention maps over images");
}

#endif

}  // namespace msmedcap::inference
