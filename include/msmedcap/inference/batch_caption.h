#pragma once
/// Captioning many images: batches decoded on worker threads while the model captions the
/// previous one; an image that cannot be read becomes a record with an error and the run goes
/// on; optional attention-map PNGs per image and branch.

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "msmedcap/config/data_config.h"
#include "msmedcap/config/stage.h"
#include "msmedcap/core/progress.h"
#include "msmedcap/data/datasets.h"
#include "msmedcap/data/feature_cache.h"
#include "msmedcap/inference/captioner.h"

namespace msmedcap::inference {

struct CaptionRecord {
  std::string id;
  std::string image;
  std::string caption;
  double score = 0;
  std::string error;  ///< non-empty: the image could not be captioned (no caption then)
  /// With BatchCaptionOptions::finding_ids_from, per branch ("clip", "sam") for a sample whose
  /// mask holds a finding: the share of the branch's attention on the finding, and the finding's
  /// share of the branch's grid (attention spread evenly would put that much there).
  std::map<std::string, double> attention_on_finding, finding_area;
};

struct BatchCaptionOptions {
  int64_t batch_size = 8;
  /// Decoding threads (at least 1).
  int64_t workers = 2;
  /// Image transforms (augmentation is never applied).
  config::ImageTransformConfig transform;
  /// Non-empty: write <dir>/<id>.clip.png and <id>.sam.png attention maps here.
  std::string attention_dir;
  /// > 0: record the attention and measure where it lands for samples with a structure mask
  /// (Sample::mask): the finding is every mask id >= this (the synthetic benchmark's lesions are
  /// 10 and up). CaptionRecord::attention_on_finding and finding_area.
  int64_t finding_ids_from = 0;
  /// The frozen encoders' cached outputs per branch instead of its pixels (null = pixels), as
  /// inference::example_options opens them from a dataset's `feature_cache`.
  std::shared_ptr<const data::FeatureCache> clip_cache, sam_cache;
};

struct BatchCaptionStats {
  int64_t images = 0;
  int64_t failed = 0;
  double seconds = 0;  ///< wall time from the first decode to the last record
};

/// Captions `samples` in order and hands each record to `on_record` (in input order).
BatchCaptionStats caption_samples(Captioner& captioner, const std::vector<data::Sample>& samples,
                                  const BatchCaptionOptions& options,
                                  const std::function<void(const CaptionRecord&)>& on_record,
                                  core::Progress* progress = nullptr);

/// `id` made safe as a file name, one to one: bytes other than letters, digits, '.', '-' and '_'
/// become %XX, so distinct ids never share a file.
std::string file_safe(const std::string& id);

/// DIR/<file_safe(id)>.<clip|sam>.png: where `caption --attention-maps DIR` writes a branch's
/// attention map (and where `report --attention-maps` finds it).
std::string attention_map_path(const std::string& dir, const std::string& id, config::Branch branch);

}  // namespace msmedcap::inference
