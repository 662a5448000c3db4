#pragma once
/// Where the patch tokens of a ViT's token sequence lie: N tokens are a square grid of patches,
/// or a class token followed by one (CLIP). Used wherever a per-token tensor goes back to the
/// image's grid (attention maps, mirrored cached features). Header-only, torch-free.

#include <cmath>
#include <cstdint>

namespace msmedcap::models {

struct TokenGrid {
  int64_t first = 0;  ///< tokens before the grid: 0, or 1 (the class token)
  int64_t side = -1;  ///< the grid's side; -1 when N is neither a square nor one more than one
};

inline TokenGrid token_grid(int64_t n) {
  const auto square = [](int64_t m) {
    const auto s = static_cast<int64_t>(std::llround(std::sqrt(static_cast<double>(m))));
    return m > 0 && s * s == m ? s : int64_t{-1};
  };
  if (const int64_t s = square(n); s > 0) return {0, s};
  return {1, square(n - 1)};
}

}  // namespace msmedcap::models
