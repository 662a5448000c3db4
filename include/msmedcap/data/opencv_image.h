#pragma once
/// data::Image to and from cv::Mat, for the files built with OpenCV (MSMEDCAP_WITH_OPENCV): the
/// raster decoders, the synthetic benchmark's renderer, plots and attention overlays.

#include <cstring>

#include <opencv2/core/mat.hpp>

#include "msmedcap/data/image.h"

namespace msmedcap::data {

/// A copy of a CV_32FC1 or CV_32FC3 matrix (values as they are).
inline Image image_from_mat(const cv::Mat& mat) {
  MSMEDCAP_CHECK(mat.depth() == CV_32F && (mat.channels() == 1 || mat.channels() == 3),
                 "image_from_mat: expected CV_32FC1 or CV_32FC3, got OpenCV type ", mat.type());
  Image image(mat.rows, mat.cols, mat.channels());
  const size_t row_bytes = static_cast<size_t>(mat.cols) * mat.channels() * sizeof(float);
  for (int r = 0; r < mat.rows; ++r) std::memcpy(image.row(r), mat.ptr<float>(r), row_bytes);
  return image;
}

/// A CV_32FC(channels) view of `image`'s samples (no copy: valid while `image` lives unchanged).
inline cv::Mat mat_view(const Image& image) {
  return cv::Mat(image.rows(), image.cols(), CV_32FC(image.channels()), const_cast<float*>(image.data()));
}

}  // namespace msmedcap::data
