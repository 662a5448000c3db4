#pragma once
/// The nearest-neighbour caption baseline (docs/DATA.md, "Baselines"): each query image gets the
/// caption of the training image closest to it under the frozen encoders' pooled features. It
/// reads the image, but only as well as the encoders' features tell images apart; a captioner
/// that learned something from the image should beat it.

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>
#include <vector>

#include "msmedcap/config/data_config.h"
#include "msmedcap/data/datasets.h"
#include "msmedcap/models/msmedcap.h"

namespace msmedcap::inference {

/// Per readable image, the concatenation over the model's branches of the CLIP features' mean
/// over tokens and the SAM embeddings average-pooled to a 4 x 4 grid (a coarse place, so side and
/// zone survive), each branch L2-normalised, then the whole. Transforms without augmentation.
struct PooledFeatures {
  at::Tensor features;                  ///< [N, D] float32 on the CPU, rows of the readable images
  std::vector<size_t> rows;             ///< index into the samples of each row
  std::vector<std::string> unreadable;  ///< "id: reason"
};
PooledFeatures pooled_features(models::MsMedCapModelImpl& model, const std::vector<data::Sample>& samples,
                               const config::ImageTransformConfig& transform, int64_t batch);

/// For each row of `queries`, the row of `keys` with the largest cosine similarity (both
/// L2-normalised [N, D]; ties as at::max picks).
std::vector<int64_t> nearest_rows(const at::Tensor& queries, const at::Tensor& keys, int64_t chunk = 256);

}  // namespace msmedcap::inference
