#pragma once
/// Dataset sources: where captions and images are and in which published layout.

#include <cstdint>
#include <string>
#include <vector>

#include "msmedcap/config/budgets.h"
#include "msmedcap/config/fields.h"

namespace msmedcap::config {

/// One dataset source. Formats (docs/DATA.md, "Datasets"): jsonl, csv (generic {image, caption}),
/// lavis (JSON list), roco, rocov2, medicat, r2gen.
struct DatasetSourceConfig {
  std::string format = "jsonl";
  /// Dataset root; image paths are resolved inside it.
  std::string root;
  /// Annotation file for jsonl/csv/lavis/medicat/r2gen (relative to root unless absolute);
  /// roco and rocov2 find theirs from the split.
  std::string annotations;
  /// Split: train/validation/test (roco), train/valid/test (rocov2, medicat, r2gen: train/val/test);
  /// empty for generic files.
  std::string split;
  /// ROCO class folder: radiology or non-radiology.
  std::string subset = "radiology";
  /// Rows that cannot be parsed are skipped and counted instead of stopping the run.
  bool skip_malformed = false;
  /// Image paths may point outside `root` (off by default: paths never escape the root).
  bool allow_outside_root = false;
  /// Sampling weight of this source within a mixture (relative to the other sources).
  double weight = 1.0;

  template <class V>
  void visit(V& v) {
    v("format", format, "layout: jsonl, csv, lavis, roco, rocov2, medicat, r2gen");
    v("root", root, "dataset root; image paths resolve inside it");
    v("annotations", annotations, "annotation file (jsonl, csv, lavis, medicat, r2gen)");
    v("split", split, "split name in the layout's spelling");
    v("subset", subset, "ROCO class folder: radiology or non-radiology");
    v("skip_malformed", skip_malformed, "skip and count unparsable rows instead of failing");
    v("allow_outside_root", allow_outside_root, "let image paths leave the root");
    v("weight", weight, "sampling weight within a mixture of sources");
  }
  void validate(const std::string& path) const;
};

/// How images become the two branches' inputs (docs/MODEL.md, "Image transforms"). Saved with runs
/// and feature caches.
struct ImageTransformConfig {
  /// CLIP branch side (224 for training, 364 for LAVIS caption evaluation).
  int64_t clip_size = 224;
  /// SAM branch side: the longest side is resized to it, then zero-padded to a square.
  int64_t sam_size = 1024;
  /// Training augmentation: random resized crop (scale range below) on the CLIP branch.
  bool augment = false;
  double crop_scale_min = 0.5;
  double crop_scale_max = 1.0;
  /// Random horizontal flip (LAVIS's default); off because captions say left and right.
  bool hflip = false;
  /// MSMedCap's quirk: derive the SAM input from the CLIP-normalised tensor (x*255 wrapped to
  /// uint8, resized). Off = SAM preprocessing of the decoded image (the correct behaviour).
  bool sam_input_from_clip_tensor = false;
  /// DICOM VOI window "CENTER,WIDTH" overriding the files' own; empty = the file's or min-max.
  std::string dicom_window;
  /// Decoding budgets (docs/RELIABILITY.md): the pixels an image header may declare (per frame)
  /// and an image file's size in MiB. An image over either is a bad sample, refused before it
  /// is decoded.
  int64_t max_image_pixels = kDefaultMaxImagePixels;
  int64_t max_image_mb = kDefaultMaxImageMb;

  template <class V>
  void visit(V& v) {
    v("clip_size", clip_size, "CLIP branch image side in pixels");
    v("sam_size", sam_size, "SAM branch side: longest side resized to it, then zero-padded");
    v("augment", augment, "training augmentation (random resized crop on the CLIP branch)");
    v("crop_scale_min", crop_scale_min, "random resized crop: smallest area fraction");
    v("crop_scale_max", crop_scale_max, "random resized crop: largest area fraction");
    v("hflip", hflip, "random horizontal flip (off: captions say left and right)");
    v("sam_input_from_clip_tensor", sam_input_from_clip_tensor,
      "MSMedCap quirk: SAM input made from the CLIP-normalised tensor");
    v("dicom_window", dicom_window, "DICOM window CENTER,WIDTH overriding the files' own");
    v("max_image_pixels", max_image_pixels, "largest width x height an image may declare (default 10000 x 10000)");
    v("max_image_mb", max_image_mb, "largest image file in MiB");
  }
  void validate(const std::string& path) const;
};

/// A dataset: one or more sources mixed by weight (the mixed-semantic stages train each
/// Q-Former on its own mixture), with the image transforms and an optional feature cache.
struct DatasetConfig {
  std::vector<DatasetSourceConfig> sources;
  /// Samples per epoch; 0 = the sum of the sources' sizes. Each source contributes
  /// round(n * weight / sum of weights) samples per epoch, cycling through its own shuffled
  /// order (so small sources repeat and large ones are subsampled).
  int64_t samples_per_epoch = 0;
  /// Folder written by `msmedcap extract-features`; empty = run the frozen encoders live.
  std::string feature_cache;
  ImageTransformConfig transform;

  template <class V>
  void visit(V& v) {
    v("sources", sources, "dataset sources mixed by their weights");
    v("samples_per_epoch", samples_per_epoch, "samples per epoch; 0 = the sum of the sources' sizes");
    v("feature_cache", feature_cache, "folder from `msmedcap extract-features`; empty = live encoders");
    v("transform", transform, "image transforms of the two branches");
  }
  void validate(const std::string& path) const;
};

/// The threaded data loader.
struct LoaderConfig {
  int64_t batch_size = 8;
  /// Decoding threads; 0 = decode in the calling thread.
  int64_t workers = 2;
  /// Batches decoded ahead of the consumer.
  int64_t prefetch = 4;
  int64_t seed = 42;
  bool shuffle = true;
  /// Drop the last incomplete batch of an epoch.
  bool drop_last = true;
  /// Largest fraction of bad samples (missing or corrupt image, empty caption) before the run stops.
  double max_bad_fraction = 0.01;

  template <class V>
  void visit(V& v) {
    v("batch_size", batch_size, "samples per batch (per rank)");
    v("workers", workers, "decoding threads; 0 = decode in the calling thread");
    v("prefetch", prefetch, "batches decoded ahead of the consumer");
    v("seed", seed, "shuffling and augmentation seed");
    v("shuffle", shuffle, "shuffle each epoch by (seed, epoch)");
    v("drop_last", drop_last, "drop the last incomplete batch of an epoch");
    v("max_bad_fraction", max_bad_fraction, "largest fraction of skipped bad samples before stopping");
  }
  void validate(const std::string& path) const;
};

}  // namespace msmedcap::config
