#include "msmedcap/data/loader.h"

#include <algorithm>

#include <torch/torch.h>

#include "msmedcap/core/check.h"
#include "msmedcap/core/error_text.h"
#include "msmedcap/core/logging.h"
#include "msmedcap/core/threads.h"
#include "msmedcap/data/image_io.h"
#include "msmedcap/data/transforms.h"

namespace msmedcap::data {
namespace {
constexpr size_t kMaxProblems = 20;
constexpr int64_t kBudgetFloor = 100;

bool blank(const std::string& s) {
  return std::all_of(s.begin(), s.end(), [](unsigned char c) { return std::isspace(c) != 0; });
}
}  // namespace

config::Json LoaderState::to_json() const { return {{"epoch", epoch}, {"batch", batch}, {"seen", seen}, {"bad", bad}}; }

LoaderState LoaderState::from_json(const config::Json& j, const std::string& where) {
  LoaderState s;
  try {
    s.epoch = j.at("epoch").get<int64_t>();
    s.batch = j.at("batch").get<int64_t>();
    s.seen = j.at("seen").get<int64_t>();
    s.bad = j.at("bad").get<int64_t>();
  } catch (const std::exception& e) {
    MSMEDCAP_FAIL(where, ": malformed loader state (", e.what(), ")");
  }
  MSMEDCAP_CHECK(s.epoch >= 0 && s.batch >= 0 && s.seen >= 0 && s.bad >= 0 && s.bad <= s.seen, where,
                 ": loader state out of range");
  return s;
}

ProcessFn make_example_processor(const config::ImageTransformConfig& cfg, ExampleOptions options) {
  DecodeOptions decode;
  decode.max_pixels = cfg.max_image_pixels;
  decode.max_bytes = cfg.max_image_mb << 20;
  if (!cfg.dicom_window.empty()) decode.window = parse_window(cfg.dicom_window, "transform.dicom_window");
  return [cfg, options, decode](const Sample& sample, std::mt19937_64& rng) {
    const bool has_caption =
        std::any_of(sample.captions.begin(), sample.captions.end(), [](const std::string& c) { return !blank(c); });
    MSMEDCAP_CHECK(!options.require_caption || has_caption, sample.id, ": empty caption");
    Example ex;
    const bool clip_pixels = options.clip && !options.clip_cache;
    const bool sam_pixels = options.sam && !options.sam_cache;
    if (clip_pixels || sam_pixels || options.keep_source) {
      Image pixels = decode_image(sample.image, decode).pixels;
      const torch::Tensor image = image_to_tensor(pixels);  // [3, H, W]
      if (options.keep_source) ex.source = std::move(pixels);
      // The CLIP input is made only when it is used: as pixels, or as the source of MSMedCap's SAM input.
      torch::Tensor clip;
      if (clip_pixels || (sam_pixels && cfg.sam_input_from_clip_tensor)) clip = clip_transform(image, cfg, &rng);
      if (clip_pixels) ex.clip = clip;
      if (sam_pixels)
        ex.sam = cfg.sam_input_from_clip_tensor ? sam_from_clip_tensor(clip, cfg) : sam_transform(image, cfg);
    }
    if (options.clip && options.clip_cache)
      ex.clip = options.clip_cache->get(feature_key(config::Branch::kClip, sample));
    if (options.sam && options.sam_cache) ex.sam = options.sam_cache->get(feature_key(config::Branch::kSam, sample));
    if (options.masks) {
      MSMEDCAP_CHECK(!sample.mask.empty(), sample.id, ": no \"mask\" (sam_pretrain learns from structure masks)");
      ex.mask = sam_mask_transform(image_to_tensor(decode_image(sample.mask, decode).pixels), cfg);
    }
    return ex;
  };
}

DataLoader::DataLoader(std::shared_ptr<const Mixture> mixture, ProcessFn process, config::LoaderConfig cfg,
                       int64_t rank, int64_t world_size)
    : mixture_(std::move(mixture)), process_(std::move(process)), cfg_(cfg), rank_(rank), world_(world_size) {
  cfg_.validate("loader");
  MSMEDCAP_CHECK(world_ >= 1 && rank_ >= 0 && rank_ < world_, "loader: rank ", rank_, " outside world size ", world_);
  MSMEDCAP_CHECK(mixture_ && mixture_->epoch_size() > 0, "loader: the dataset has no samples");
}

DataLoader::~DataLoader() { stop_workers(); }

std::vector<int64_t> DataLoader::rank_order(int64_t epoch) const {
  const std::vector<int64_t> all = mixture_->epoch_order(static_cast<uint64_t>(cfg_.seed), epoch, cfg_.shuffle);
  const int64_t n = static_cast<int64_t>(all.size());
  const int64_t per_rank = (n + world_ - 1) / world_;  // padded by wrapping, as DistributedSampler
  std::vector<int64_t> mine;
  mine.reserve(static_cast<size_t>(per_rank));
  for (int64_t k = 0; k < per_rank; ++k) mine.push_back(all[static_cast<size_t>((rank_ + k * world_) % n)]);
  return mine;
}

int64_t DataLoader::batches_per_epoch() const {
  const int64_t n = (mixture_->epoch_size() + world_ - 1) / world_;
  return cfg_.drop_last ? n / cfg_.batch_size : (n + cfg_.batch_size - 1) / cfg_.batch_size;
}

DataLoader::Slot DataLoader::build(int64_t b) const {
  Slot slot;
  slot.batch.epoch = state_.epoch;
  slot.batch.index = b;
  std::vector<at::Tensor> clips, sams, masks;
  const int64_t begin = b * cfg_.batch_size;
  const int64_t end = std::min<int64_t>(begin + cfg_.batch_size, static_cast<int64_t>(order_.size()));
  try {
    for (int64_t k = begin; k < end; ++k) {
      const Sample& sample = mixture_->samples()[static_cast<size_t>(order_[static_cast<size_t>(k)])];
      // Keyed by the position over all ranks: the same sample is augmented alike however many
      // processes share the epoch.
      std::mt19937_64 rng(mix_seed(static_cast<uint64_t>(cfg_.seed), static_cast<uint64_t>(state_.epoch),
                                   static_cast<uint64_t>(rank_ + k * world_)));
      try {
        Example ex = process_(sample, rng);
        if (ex.clip.defined()) clips.push_back(ex.clip);
        if (ex.sam.defined()) sams.push_back(ex.sam);
        if (ex.mask.defined()) masks.push_back(ex.mask);
        slot.batch.samples.push_back(sample);
        slot.batch.positions.push_back(rank_ + k * world_);
      } catch (const msmedcap::Error& e) {
        ++slot.batch.skipped;
        slot.problems.emplace_back(core::error_text(e));
      }
    }
    if (!clips.empty()) slot.batch.clip = torch::stack(clips);
    if (!sams.empty()) slot.batch.sam = torch::stack(sams);
    if (!masks.empty()) slot.batch.masks = torch::stack(masks);
  } catch (...) {
    slot.error = std::current_exception();
  }
  return slot;
}

void DataLoader::worker() {
  core::configure_worker_thread();
  for (;;) {
    int64_t b = 0;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock,
               [&] { return stop_ || next_claim_ >= num_batches_ || next_claim_ < state_.batch + cfg_.prefetch; });
      if (stop_ || next_claim_ >= num_batches_) return;
      b = next_claim_++;
    }
    Slot slot = build(b);
    {
      std::lock_guard<std::mutex> lock(mu_);
      done_.emplace(b, std::move(slot));
    }
    cv_.notify_all();
  }
}

void DataLoader::start_epoch() {
  order_ = rank_order(state_.epoch);
  num_batches_ = batches_per_epoch();
  done_.clear();
  next_claim_ = state_.batch;
  stop_ = false;
  started_ = true;
  for (int64_t t = 0; t < cfg_.workers; ++t) threads_.emplace_back([this] { worker(); });
}

void DataLoader::stop_workers() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  for (auto& t : threads_) t.join();
  threads_.clear();
  done_.clear();
  started_ = false;
}

void DataLoader::restore(const LoaderState& state) {
  stop_workers();
  state_ = state;
}

std::optional<Batch> DataLoader::next() {
  for (;;) {
    if (!started_) start_epoch();
    if (state_.batch >= num_batches_) {
      stop_workers();
      ++state_.epoch;
      state_.batch = 0;
      return std::nullopt;
    }
    Slot slot;
    if (cfg_.workers == 0) {
      slot = build(state_.batch);
    } else {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] { return done_.count(state_.batch) > 0; });
      slot = std::move(done_.at(state_.batch));
      done_.erase(state_.batch);
    }
    if (slot.error) {
      stop_workers();
      std::rethrow_exception(slot.error);
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      ++state_.batch;
      state_.seen += static_cast<int64_t>(slot.batch.samples.size()) + slot.batch.skipped;
      state_.bad += slot.batch.skipped;
    }
    cv_.notify_all();
    for (auto& p : slot.problems) {
      core::log_warn("data", "skipped: {}", p);
      if (problems_.size() < kMaxProblems) problems_.push_back(std::move(p));
    }
    const double budget = cfg_.max_bad_fraction * static_cast<double>(std::max(state_.seen, kBudgetFloor));
    if (static_cast<double>(state_.bad) > budget) {
      stop_workers();
      MSMEDCAP_FAIL("data: ", state_.bad, " bad samples out of ", state_.seen,
                    " exceed loader.max_bad_fraction = ", cfg_.max_bad_fraction,
                    " (first: ", problems_.empty() ? std::string("?") : problems_.front(), ")");
    }
    if (slot.batch.samples.empty()) continue;  // every sample of this batch was bad
    return std::move(slot.batch);
  }
}

}  // namespace msmedcap::data
