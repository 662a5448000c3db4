#pragma once
/// Image transforms per branch (docs/MODEL.md, "Image transforms"):
///  * CLIP: bicubic resize to S x S (no aspect preservation), CLIP mean/std; in training a random
///    resized crop (scale 0.5-1, ratio 3/4-4/3) and, only when asked, a horizontal flip.
///  * SAM: longest side to 1024 (bilinear), ImageNet mean/std, zero padding bottom/right.
/// Resizing is PIL's (torchvision antialias=True): separable filters widened by the downscale
/// factor, bicubic a = -0.5, computed in float32 (PIL rounds to uint8 between passes: at most
/// 0.5/255 apart).

#include <cstdint>
#include <random>

#include <torch/types.h>

#include "msmedcap/config/data_config.h"
#include "msmedcap/data/image_io.h"

namespace msmedcap::data {

inline constexpr float kClipMean[3] = {0.48145466f, 0.4578275f, 0.40821073f};
inline constexpr float kClipStd[3] = {0.26862954f, 0.26130258f, 0.27577711f};
inline constexpr float kImageNetMean[3] = {0.485f, 0.456f, 0.406f};
inline constexpr float kImageNetStd[3] = {0.229f, 0.224f, 0.225f};

enum class ResizeFilter { kBilinear, kBicubic };

/// [C, H, W] float32 of a decoded image; grey images are repeated to 3 channels.
torch::Tensor image_to_tensor(const Image& pixels);

/// Antialiased resize of [C, H, W] (or [B, C, H, W]) float to (out_h, out_w), as PIL/torchvision.
torch::Tensor resize(const torch::Tensor& image, int64_t out_h, int64_t out_w, ResizeFilter filter);

/// (image - mean) / std per channel of [3, H, W].
torch::Tensor normalize(const torch::Tensor& image, const float (&mean)[3], const float (&std)[3]);

/// A crop box in pixels.
struct CropBox {
  int64_t top = 0, left = 0, height = 0, width = 0;
};

/// torchvision's RandomResizedCrop.get_params with `rng`: ten tries at an area fraction in
/// [scale_min, scale_max] and a log-uniform aspect in [3/4, 4/3], then a centre crop.
CropBox random_resized_crop_box(int64_t height, int64_t width, double scale_min, double scale_max,
                                std::mt19937_64& rng);

/// CLIP branch input [3, S, S]. `rng` drives augmentation (only read when cfg.augment or cfg.hflip).
torch::Tensor clip_transform(const torch::Tensor& image, const config::ImageTransformConfig& cfg,
                             std::mt19937_64* rng = nullptr);

/// SAM branch input [3, sam_size, sam_size] from [3, H, W] in [0, 1].
torch::Tensor sam_transform(const torch::Tensor& image, const config::ImageTransformConfig& cfg);

/// The structure ids of a decoded 8-bit mask (image_to_tensor's [C, H, W] in [0, 1]):
/// round(255 x channel 0), [H, W] int64.
torch::Tensor structure_ids(const torch::Tensor& mask);

/// A structure mask (as structure_ids reads it) on the SAM input's geometry: the longest side
/// resized to sam_size, padded with 0 (background) at the bottom and right as sam_transform pads.
/// Shrinking, each pixel takes the largest id among the source pixels it covers (structures drawn
/// later carry higher ids, and none of one pixel vanishes); enlarging, nearest neighbour.
/// Returns [S, S] int64 ids.
torch::Tensor sam_mask_transform(const torch::Tensor& mask, const config::ImageTransformConfig& cfg);

/// MSMedCap's SAM input made from a CLIP-normalised tensor [3, S, S]: x*255 truncated to an
/// integer and wrapped modulo 256 (a uint8 cast), then sam_transform. Faithful to the upstream
/// code path (docs/MODEL.md, "MSMedCap's SAM input quirk"), not to the image.
torch::Tensor sam_from_clip_tensor(const torch::Tensor& clip_input, const config::ImageTransformConfig& cfg);

/// The new (height, width) of SAM's ResizeLongestSide: int(side * target / longest + 0.5).
std::pair<int64_t, int64_t> sam_resized_shape(int64_t height, int64_t width, int64_t target);

}  // namespace msmedcap::data
