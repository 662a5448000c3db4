#pragma once
/// Default budgets for untrusted images (docs/RELIABILITY.md), shared by the typed config
/// (data.transform.max_image_pixels / max_image_mb) and the decoder's own defaults.

#include <cstdint>

namespace msmedcap::config {

inline constexpr int64_t kDefaultMaxImagePixels = 100'000'000;  ///< 10000 x 10000 per frame
inline constexpr int64_t kDefaultMaxImageMb = 1024;             ///< file size, MiB

}  // namespace msmedcap::config
