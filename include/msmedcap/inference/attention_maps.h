#pragma once
/// Attention maps as images: a branch's attention grid (BranchAttention) laid over the picture
/// it came from as a heat map, so a reader sees which regions the CLIP and SAM queries used.

#include <ATen/core/Tensor.h>

#include <string>

#include "msmedcap/data/image.h"

namespace msmedcap::inference {

/// The PNG bytes of `image` (grey or RGB in [0, 1]) with `map` ([h, w]) over
/// it: the map's top-left `valid_rows` x `valid_cols` fraction (the part of the grid that saw the
/// image rather than padding) is resized to the picture, min-max scaled and coloured (JET,
/// blue = least, red = most attention) at half opacity. The longest side is at most `max_side`.
/// Drawn with OpenCV: a build without it fails with "built without opencv".
std::string attention_overlay_png(const data::Image& image, const at::Tensor& map, double valid_rows = 1.0,
                                  double valid_cols = 1.0, int max_side = 512);

}  // namespace msmedcap::inference
