#include "msmedcap/config/data_config.h"

#include <algorithm>
#include <cmath>

namespace msmedcap::config {

void DatasetSourceConfig::validate(const std::string& path) const {
  static const char* kFormats[] = {"jsonl", "csv", "lavis", "roco", "rocov2", "medicat", "r2gen"};
  MSMEDCAP_CHECK(std::find(std::begin(kFormats), std::end(kFormats), format) != std::end(kFormats), path,
                 ".format: expected jsonl, csv, lavis, roco, rocov2, medicat or r2gen, got '", format, "'");
  MSMEDCAP_CHECK(!root.empty(), path, ".root: must name the dataset folder");
  MSMEDCAP_CHECK(subset == "radiology" || subset == "non-radiology", path,
                 ".subset: expected radiology or non-radiology, got '", subset, "'");
  if (format == "roco" || format == "rocov2" || format == "r2gen") {
    MSMEDCAP_CHECK(!split.empty(), path, ".split: the ", format, " layout needs a split");
  }
  if (format == "jsonl" || format == "csv" || format == "lavis") {
    MSMEDCAP_CHECK(!annotations.empty(), path, ".annotations: the ", format, " layout needs an annotation file");
  }
}

void DatasetConfig::validate(const std::string& path) const {
  double total = 0;
  for (size_t i = 0; i < sources.size(); ++i) {
    const std::string p = path + ".sources[" + std::to_string(i) + "]";
    sources[i].validate(p);
    MSMEDCAP_CHECK(sources[i].weight >= 0 && std::isfinite(sources[i].weight), p, ".weight: must be >= 0, got ",
                   sources[i].weight);
    total += sources[i].weight;
  }
  MSMEDCAP_CHECK(sources.empty() || total > 0, path, ".sources: the weights sum to 0");
  MSMEDCAP_CHECK(samples_per_epoch >= 0, path, ".samples_per_epoch: must be >= 0, got ", samples_per_epoch);
  transform.validate(path + ".transform");
}

void LoaderConfig::validate(const std::string& path) const {
  MSMEDCAP_CHECK(batch_size >= 1, path, ".batch_size: must be >= 1, got ", batch_size);
  MSMEDCAP_CHECK(workers >= 0 && workers <= 256, path, ".workers: expected 0..256, got ", workers);
  MSMEDCAP_CHECK(prefetch >= 1, path, ".prefetch: must be >= 1, got ", prefetch);
  MSMEDCAP_CHECK(max_bad_fraction >= 0 && max_bad_fraction <= 1, path, ".max_bad_fraction: expected 0..1, got ",
                 max_bad_fraction);
}

void ImageTransformConfig::validate(const std::string& path) const {
  MSMEDCAP_CHECK(clip_size >= 16 && clip_size <= 4096, path, ".clip_size: expected 16..4096, got ", clip_size);
  MSMEDCAP_CHECK(sam_size >= 16 && sam_size <= 4096, path, ".sam_size: expected 16..4096, got ", sam_size);
  MSMEDCAP_CHECK(crop_scale_min > 0 && crop_scale_min <= crop_scale_max && crop_scale_max <= 1, path,
                 ".crop_scale_min/max: expected 0 < min <= max <= 1, got ", crop_scale_min, " and ", crop_scale_max);
  // OpenCV refuses more than 2^30 pixels itself; 64 GiB is past any image file.
  MSMEDCAP_CHECK(max_image_pixels >= 1 && max_image_pixels <= (int64_t{1} << 30), path,
                 ".max_image_pixels: expected 1..1073741824, got ", max_image_pixels);
  MSMEDCAP_CHECK(max_image_mb >= 1 && max_image_mb <= 65536, path, ".max_image_mb: expected 1..65536, got ",
                 max_image_mb);
}

}  // namespace msmedcap::config
