#pragma once
/// The threaded data loader: worker threads decode and transform samples into a bounded prefetch
/// queue; batches come out in a fixed order whatever the thread timing. The order is a function
/// of (seed, epoch) (data/mixture.h), sharded by rank (every world-th sample, padded by wrapping
/// so every rank sees the same number of batches), and resumable from a LoaderState. Bad samples
/// (missing or corrupt image, empty caption) are skipped, counted and reported; the run stops
/// when bad > max_bad_fraction * max(seen, 100).

#include <condition_variable>
#include <cstdint>
#include <exception>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <ATen/core/Tensor.h>

#include "msmedcap/config/data_config.h"
#include "msmedcap/config/fields.h"
#include "msmedcap/data/feature_cache.h"
#include "msmedcap/data/image.h"
#include "msmedcap/data/mixture.h"

namespace msmedcap::data {

/// One processed sample: the branches' inputs (pixels, or cached encoder features).
struct Example {
  at::Tensor clip;  // [3, S, S] pixels or cached CLIP features
  at::Tensor sam;   // [3, 1024, 1024] pixels or cached SAM features
  Image source;     // the decoded image (1 or 3 channels in [0, 1]) when ExampleOptions::keep_source
  at::Tensor mask;  // [S, S] int64 structure ids (sam_mask_transform) when ExampleOptions::masks
};

/// A batch: the samples (ids, captions, attributes) and their stacked tensors.
struct Batch {
  int64_t epoch = 0;
  int64_t index = 0;  // batch index within the epoch
  std::vector<Sample> samples;
  /// Each sample's position in the epoch's order over all ranks (rank + k * world_size), a key
  /// unique within the epoch whatever the number of ranks.
  std::vector<int64_t> positions;
  at::Tensor clip;   // [B, ...] or undefined
  at::Tensor sam;    // [B, ...] or undefined
  at::Tensor masks;  // [B, S, S] int64 structure ids or undefined (ExampleOptions::masks)
  /// Samples of this batch that were skipped as bad.
  int64_t skipped = 0;
};

/// Where a loader is: saved with checkpoints, restored to continue.
struct LoaderState {
  int64_t epoch = 0;
  int64_t batch = 0;  // next batch index within the epoch
  int64_t seen = 0;   // samples attempted so far (this rank)
  int64_t bad = 0;    // samples skipped as bad so far
  config::Json to_json() const;
  static LoaderState from_json(const config::Json& j, const std::string& where);
};

/// Turns a sample into an Example; throws (msmedcap::Error) on a bad sample. `rng` is seeded
/// per (seed, epoch, position in the epoch over all ranks), so augmentation depends neither on
/// threads nor on the number of processes.
using ProcessFn = std::function<Example(const Sample&, std::mt19937_64& rng)>;

/// What to produce for each branch.
struct ExampleOptions {
  bool clip = true;
  bool sam = true;
  /// Cached features instead of pixels, per branch (null = pixels).
  std::shared_ptr<const FeatureCache> clip_cache, sam_cache;
  /// Training needs a caption; captioning images does not.
  bool require_caption = true;
  /// Keep the decoded image in Example::source (attention maps draw over it).
  bool keep_source = false;
  /// Load each sample's structure mask (Sample::mask) at the SAM input's geometry (sam_pretrain).
  bool masks = false;
};

/// The standard processing: decode (DICOM windowing from cfg), CLIP and SAM transforms, or the
/// cached features; an empty caption is a bad sample (unless !options.require_caption).
ProcessFn make_example_processor(const config::ImageTransformConfig& cfg, ExampleOptions options);

class DataLoader {
 public:
  DataLoader(std::shared_ptr<const Mixture> mixture, ProcessFn process, config::LoaderConfig cfg, int64_t rank = 0,
             int64_t world_size = 1);
  ~DataLoader();
  DataLoader(const DataLoader&) = delete;
  DataLoader& operator=(const DataLoader&) = delete;

  /// The next batch of the current epoch, or nothing at the epoch's end (the following call
  /// starts the next epoch). Throws when the bad-sample budget is exceeded.
  std::optional<Batch> next();
  /// Batches per epoch on this rank.
  int64_t batches_per_epoch() const;
  LoaderState state() const { return state_; }
  /// Continues from `state` (stops any prefetching first).
  void restore(const LoaderState& state);
  /// The first problems met (file: reason), at most 20.
  const std::vector<std::string>& problems() const { return problems_; }
  /// This rank's sample indices (into mixture.samples()) of `epoch`.
  std::vector<int64_t> rank_order(int64_t epoch) const;

 private:
  struct Slot {
    Batch batch;
    std::vector<std::string> problems;
    std::exception_ptr error;
  };
  Slot build(int64_t b) const;
  void start_epoch();
  void stop_workers();
  void worker();

  std::shared_ptr<const Mixture> mixture_;
  ProcessFn process_;
  config::LoaderConfig cfg_;
  int64_t rank_, world_;
  LoaderState state_;
  std::vector<std::string> problems_;

  // The current epoch's work.
  bool started_ = false;
  std::vector<int64_t> order_;
  int64_t num_batches_ = 0;
  std::mutex mu_;
  std::condition_variable cv_;
  std::map<int64_t, Slot> done_;
  int64_t next_claim_ = 0;
  bool stop_ = false;
  std::vector<std::thread> threads_;
};

}  // namespace msmedcap::data
