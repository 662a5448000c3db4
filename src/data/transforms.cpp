#include "msmedcap/data/transforms.h"

#include <cmath>
#include <vector>

#include <torch/torch.h>

#include "msmedcap/core/check.h"

namespace msmedcap::data {
namespace {

double bicubic(double x) {
  constexpr double a = -0.5;
  x = std::fabs(x);
  if (x < 1) return ((a + 2) * x - (a + 3)) * x * x + 1;
  if (x < 2) return (((x - 5) * x + 8) * x - 4) * a;
  return 0;
}
double triangle(double x) {
  x = std::fabs(x);
  return x < 1 ? 1 - x : 0;
}

/// PIL's precompute_coeffs: for each output index, the first input index and its weights.
struct Coeffs {
  std::vector<int64_t> start;
  std::vector<std::vector<float>> weights;
};

Coeffs resample_coeffs(int64_t in_size, int64_t out_size, ResizeFilter filter) {
  const double support0 = filter == ResizeFilter::kBicubic ? 2.0 : 1.0;
  const double scale = static_cast<double>(in_size) / static_cast<double>(out_size);
  const double filterscale = std::max(scale, 1.0);
  const double support = support0 * filterscale;
  const double ss = 1.0 / filterscale;
  Coeffs c;
  for (int64_t xx = 0; xx < out_size; ++xx) {
    const double center = (static_cast<double>(xx) + 0.5) * scale;
    const int64_t xmin = std::max<int64_t>(static_cast<int64_t>(center - support + 0.5), 0);
    const int64_t xmax = std::min<int64_t>(static_cast<int64_t>(center + support + 0.5), in_size);
    std::vector<double> w;
    double total = 0;
    for (int64_t x = xmin; x < xmax; ++x) {
      const double arg = (static_cast<double>(x) - center + 0.5) * ss;
      w.push_back(filter == ResizeFilter::kBicubic ? bicubic(arg) : triangle(arg));
      total += w.back();
    }
    std::vector<float> wf;
    for (double v : w) wf.push_back(total != 0 ? static_cast<float>(v / total) : 0.0f);
    c.start.push_back(xmin);
    c.weights.push_back(std::move(wf));
  }
  return c;
}

/// One separable pass over `planes` planes of rows x in_cols, resampling columns (stride 1) or
/// rows, writing planes x out.
void resample_pass(const float* src, float* dst, int64_t planes, int64_t rows, int64_t cols, bool along_rows,
                   const Coeffs& c) {
  const int64_t out = static_cast<int64_t>(c.start.size());
  for (int64_t p = 0; p < planes; ++p) {
    if (!along_rows) {  // resample each row: [rows, cols] -> [rows, out]
      for (int64_t r = 0; r < rows; ++r) {
        const float* in = src + (p * rows + r) * cols;
        float* o = dst + (p * rows + r) * out;
        for (int64_t k = 0; k < out; ++k) {
          float acc = 0;
          const auto& w = c.weights[static_cast<size_t>(k)];
          const float* x = in + c.start[static_cast<size_t>(k)];
          for (size_t t = 0; t < w.size(); ++t) acc += w[t] * x[t];
          o[k] = acc;
        }
      }
    } else {  // resample columns: [rows, cols] -> [out, cols]
      for (int64_t k = 0; k < out; ++k) {
        float* o = dst + (p * out + k) * cols;
        std::fill(o, o + cols, 0.0f);
        const auto& w = c.weights[static_cast<size_t>(k)];
        for (size_t t = 0; t < w.size(); ++t) {
          const float* in = src + (p * rows + c.start[static_cast<size_t>(k)] + static_cast<int64_t>(t)) * cols;
          for (int64_t j = 0; j < cols; ++j) o[j] += w[t] * in[j];
        }
      }
    }
  }
}

}  // namespace

torch::Tensor image_to_tensor(const Image& pixels) {
  MSMEDCAP_CHECK(pixels.channels() == 1 || pixels.channels() == 3, "image_to_tensor: expected 1 or 3 channels, got ",
                 pixels.channels());
  auto t = torch::from_blob(const_cast<float*>(pixels.data()), {pixels.rows(), pixels.cols(), pixels.channels()},
                            torch::kFloat32)
               .permute({2, 0, 1})
               .contiguous();  // [C, H, W]
  return t.size(0) == 1 ? t.expand({3, t.size(1), t.size(2)}).contiguous() : t;
}

torch::Tensor resize(const torch::Tensor& image, int64_t out_h, int64_t out_w, ResizeFilter filter) {
  MSMEDCAP_CHECK(image.dim() == 3 || image.dim() == 4, "resize: expected [C, H, W] or [B, C, H, W], got ",
                 image.sizes());
  MSMEDCAP_CHECK(image.device().is_cpu(), "resize: runs on CPU tensors (the data loader's side)");
  MSMEDCAP_CHECK(out_h > 0 && out_w > 0, "resize: target ", out_h, "x", out_w, " is empty");
  const int64_t h = image.size(-2), w = image.size(-1);
  const int64_t planes = image.numel() / std::max<int64_t>(h * w, 1);
  torch::Tensor x = image.to(torch::kFloat32).contiguous();
  if (w != out_w) {
    auto sizes = x.sizes().vec();
    sizes.back() = out_w;
    torch::Tensor y = torch::empty(sizes, x.options());
    resample_pass(x.data_ptr<float>(), y.data_ptr<float>(), planes, h, w, false, resample_coeffs(w, out_w, filter));
    x = y;
  }
  if (h != out_h) {
    auto sizes = x.sizes().vec();
    sizes[sizes.size() - 2] = out_h;
    torch::Tensor y = torch::empty(sizes, x.options());
    resample_pass(x.data_ptr<float>(), y.data_ptr<float>(), planes, h, out_w, true, resample_coeffs(h, out_h, filter));
    x = y;
  }
  return x;
}

torch::Tensor normalize(const torch::Tensor& image, const float (&mean)[3], const float (&std)[3]) {
  MSMEDCAP_CHECK(image.dim() == 3 && image.size(0) == 3, "normalize: expected [3, H, W], got ", image.sizes());
  const auto m = torch::tensor({mean[0], mean[1], mean[2]}, image.options()).view({3, 1, 1});
  const auto s = torch::tensor({std[0], std[1], std[2]}, image.options()).view({3, 1, 1});
  return (image - m) / s;
}

CropBox random_resized_crop_box(int64_t height, int64_t width, double scale_min, double scale_max,
                                std::mt19937_64& rng) {
  const double area = static_cast<double>(height * width);
  const double log_lo = std::log(3.0 / 4.0), log_hi = std::log(4.0 / 3.0);
  std::uniform_real_distribution<double> u(0.0, 1.0);
  for (int attempt = 0; attempt < 10; ++attempt) {
    const double target = area * (scale_min + (scale_max - scale_min) * u(rng));
    const double aspect = std::exp(log_lo + (log_hi - log_lo) * u(rng));
    const auto w = static_cast<int64_t>(std::llround(std::sqrt(target * aspect)));
    const auto h = static_cast<int64_t>(std::llround(std::sqrt(target / aspect)));
    if (w > 0 && h > 0 && w <= width && h <= height) {
      const int64_t top = std::uniform_int_distribution<int64_t>(0, height - h)(rng);
      const int64_t left = std::uniform_int_distribution<int64_t>(0, width - w)(rng);
      return {top, left, h, w};
    }
  }
  // Fallback: the largest centred crop with the aspect clamped to [3/4, 4/3].
  const double ratio = static_cast<double>(width) / static_cast<double>(height);
  int64_t w = width, h = height;
  if (ratio < 3.0 / 4.0)
    h = static_cast<int64_t>(std::llround(static_cast<double>(w) / (3.0 / 4.0)));
  else if (ratio > 4.0 / 3.0)
    w = static_cast<int64_t>(std::llround(static_cast<double>(h) * (4.0 / 3.0)));
  return {(height - h) / 2, (width - w) / 2, h, w};
}

torch::Tensor clip_transform(const torch::Tensor& image, const config::ImageTransformConfig& cfg,
                             std::mt19937_64* rng) {
  MSMEDCAP_CHECK(image.dim() == 3 && image.size(0) == 3, "clip_transform: expected [3, H, W], got ", image.sizes());
  torch::Tensor x = image;
  if (cfg.augment) {
    MSMEDCAP_CHECK(rng != nullptr, "clip_transform: augmentation needs a random generator");
    const CropBox box = random_resized_crop_box(x.size(1), x.size(2), cfg.crop_scale_min, cfg.crop_scale_max, *rng);
    x = x.narrow(1, box.top, box.height).narrow(2, box.left, box.width);
  }
  x = resize(x, cfg.clip_size, cfg.clip_size, ResizeFilter::kBicubic).clamp(0.0, 1.0);
  if (cfg.hflip) {
    MSMEDCAP_CHECK(rng != nullptr, "clip_transform: flipping needs a random generator");
    if (std::uniform_int_distribution<int>(0, 1)(*rng) == 1) x = x.flip({2});
  }
  return normalize(x, kClipMean, kClipStd);
}

std::pair<int64_t, int64_t> sam_resized_shape(int64_t height, int64_t width, int64_t target) {
  const double scale = static_cast<double>(target) / static_cast<double>(std::max(height, width));
  return {static_cast<int64_t>(static_cast<double>(height) * scale + 0.5),
          static_cast<int64_t>(static_cast<double>(width) * scale + 0.5)};
}

torch::Tensor sam_transform(const torch::Tensor& image, const config::ImageTransformConfig& cfg) {
  MSMEDCAP_CHECK(image.dim() == 3 && image.size(0) == 3, "sam_transform: expected [3, H, W], got ", image.sizes());
  const auto [h, w] = sam_resized_shape(image.size(1), image.size(2), cfg.sam_size);
  const torch::Tensor x =
      normalize(resize(image, h, w, ResizeFilter::kBilinear).clamp(0.0, 1.0), kImageNetMean, kImageNetStd);
  torch::Tensor out = torch::zeros({3, cfg.sam_size, cfg.sam_size}, x.options());
  out.narrow(1, 0, h).narrow(2, 0, w).copy_(x);
  return out;
}

torch::Tensor structure_ids(const torch::Tensor& mask) {
  MSMEDCAP_CHECK(mask.dim() == 3, "structure mask: expected [C, H, W], got ", mask.sizes());
  return (mask.select(0, 0) * 255).round().to(torch::kLong);
}

torch::Tensor sam_mask_transform(const torch::Tensor& mask, const config::ImageTransformConfig& cfg) {
  const auto [h, w] = sam_resized_shape(mask.size(1), mask.size(2), cfg.sam_size);
  const auto ids = structure_ids(mask).to(torch::kFloat32).unsqueeze(0).unsqueeze(0);
  namespace F = torch::nn::functional;
  // Shrinking: each pixel takes the largest id over its source pixels, so a structure of one
  // source pixel survives (nearest neighbour dropped 23% of the synthetic benchmark's small
  // calcifications at half size, and taught sam_pretrain that they are background).
  torch::Tensor resized;  // [1, 1, h, w]
  if (h < mask.size(1) || w < mask.size(2)) {
    resized = F::adaptive_max_pool2d(ids, F::AdaptiveMaxPool2dFuncOptions({h, w}));
  } else {
    resized = F::interpolate(ids, F::InterpolateFuncOptions().size(std::vector<int64_t>{h, w}).mode(torch::kNearest));
  }
  torch::Tensor out = torch::zeros({cfg.sam_size, cfg.sam_size}, torch::kLong);
  out.narrow(0, 0, h).narrow(1, 0, w).copy_(resized[0][0].to(torch::kLong));
  return out;
}

torch::Tensor sam_from_clip_tensor(const torch::Tensor& clip_input, const config::ImageTransformConfig& cfg) {
  MSMEDCAP_CHECK(clip_input.dim() == 3 && clip_input.size(0) == 3, "sam_from_clip_tensor: expected [3, S, S], got ",
                 clip_input.sizes());
  // mul(255) then a C cast to uint8: truncation toward zero, wrapped modulo 256.
  const torch::Tensor bytes = torch::remainder((clip_input * 255).to(torch::kInt64), 256).to(torch::kFloat32);
  return sam_transform(bytes / 255.0, cfg);
}

}  // namespace msmedcap::data
