#pragma once
/// msmedcap's decoded image: float32 samples, rows x cols x channels, channels interleaved, rows
/// contiguous (the layout OpenCV, PIL and DICOM's colour-by-pixel use). One or three channels
/// (grey or RGB), values in [0, 1] once decoded. Neither LibTorch nor OpenCV: the decoders fill
/// it, the transforms turn it into a tensor (data/transforms.h), and data/opencv_image.h lends it
/// to OpenCV where that library is built in.

#include <cstddef>
#include <vector>

#include "msmedcap/core/check.h"

namespace msmedcap::data {

class Image {
 public:
  Image() = default;
  /// rows x cols x channels zeros; throws on a negative size or a channel count other than 1-4.
  Image(int rows, int cols, int channels) : rows_(rows), cols_(cols), channels_(channels) {
    MSMEDCAP_CHECK(rows >= 0 && cols >= 0 && channels >= 1 && channels <= 4, "image of ", rows, " x ", cols, " x ",
                   channels, ": sizes must be >= 0 and channels 1-4");
    values_.assign(static_cast<size_t>(rows) * cols * channels, 0.0f);
  }
  int rows() const { return rows_; }
  int cols() const { return cols_; }
  int channels() const { return channels_; }
  bool empty() const { return values_.empty(); }
  /// rows x cols x channels.
  size_t size() const { return values_.size(); }
  float* data() { return values_.data(); }
  const float* data() const { return values_.data(); }
  /// The first sample of row `r`.
  float* row(int r) { return values_.data() + static_cast<size_t>(r) * cols_ * channels_; }
  const float* row(int r) const { return values_.data() + static_cast<size_t>(r) * cols_ * channels_; }

 private:
  int rows_ = 0, cols_ = 0, channels_ = 0;
  std::vector<float> values_;
};

}  // namespace msmedcap::data
