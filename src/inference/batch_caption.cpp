#include "msmedcap/inference/batch_caption.h"

#include <ATen/ATen.h>

#include <chrono>
#include <filesystem>
#include <future>
#include <optional>
#include <random>
#include <thread>

#include "msmedcap/core/atomic_file.h"
#include "msmedcap/core/check.h"
#include "msmedcap/core/components.h"
#include "msmedcap/core/error_text.h"
#include "msmedcap/data/loader.h"
#include "msmedcap/data/transforms.h"
#include "msmedcap/inference/attention_maps.h"

namespace msmedcap::inference {
namespace {

/// One batch after decoding: each sample's example or its error.
struct Decoded {
  size_t begin = 0, end = 0;
  std::vector<std::optional<data::Example>> examples;
  std::vector<std::string> errors;
};

Decoded decode(const data::ProcessFn& process, const std::vector<data::Sample>& samples, size_t begin, size_t end,
               int64_t workers) {
  Decoded d;
  d.begin = begin;
  d.end = end;
  d.examples.resize(end - begin);
  d.errors.resize(end - begin);
  auto work = [&](size_t first, size_t stride) {
    std::mt19937_64 rng(0);  // no augmentation: unused
    for (size_t i = first; i < end - begin; i += stride) {
      try {
        d.examples[i] = process(samples[begin + i], rng);
      } catch (const std::exception& e) {
        d.errors[i] = core::error_text(e);
      }
    }
  };
  const size_t threads = std::max<size_t>(1, std::min<size_t>(static_cast<size_t>(workers), end - begin));
  std::vector<std::thread> pool;
  for (size_t t = 1; t < threads; ++t) pool.emplace_back(work, t, threads);
  work(0, threads);
  for (auto& t : pool) t.join();
  return d;
}

/// The fraction of the SAM grid that covered the image rather than padding.
std::pair<double, double> sam_valid(const config::ImageTransformConfig& cfg, int64_t h, int64_t w) {
  if (cfg.sam_input_from_clip_tensor) return {1.0, 1.0};
  const auto [rh, rw] = data::sam_resized_shape(h, w, cfg.sam_size);
  return {static_cast<double>(rh) / static_cast<double>(cfg.sam_size),
          static_cast<double>(rw) / static_cast<double>(cfg.sam_size)};
}

void write_maps(const BranchAttention& maps, int64_t row, const data::Image& image, const data::Sample& sample,
                const BatchCaptionOptions& o) {
  if (maps.clip.defined())
    core::write_file_atomic(attention_map_path(o.attention_dir, sample.id, config::Branch::kClip),
                            attention_overlay_png(image, maps.clip[row]));
  if (maps.sam.defined()) {
    const auto [fr, fc] = sam_valid(o.transform, image.rows(), image.cols());
    core::write_file_atomic(attention_map_path(o.attention_dir, sample.id, config::Branch::kSam),
                            attention_overlay_png(image, maps.sam[row], fr, fc));
  }
}

/// The share of `map` [g, g'] (attention, summing to one or not) on `finding` ([H, W], 1 on the
/// finding), the finding area-averaged onto the part of the grid that saw the image: `frac_rows`
/// x `frac_cols` of it (SAM pads right and bottom; the CLIP input is the whole square image, a
/// crop is not undone). Nothing is recorded for an all-zero map.
void measure_on_finding(const at::Tensor& map, const at::Tensor& finding, const char* branch, double frac_rows,
                        double frac_cols, CaptionRecord& r) {
  const int64_t g = map.size(0), gc = map.size(1);
  const int64_t rows = std::max<int64_t>(1, std::llround(frac_rows * static_cast<double>(g)));
  const int64_t cols = std::max<int64_t>(1, std::llround(frac_cols * static_cast<double>(gc)));
  auto grid = at::zeros({g, gc}, at::kFloat);
  grid.narrow(0, 0, rows)
      .narrow(1, 0, cols)
      .copy_(at::adaptive_avg_pool2d(finding.unsqueeze(0).unsqueeze(0), {rows, cols})[0][0]);
  const auto a = map.to(at::kFloat).cpu().clamp_min(0);
  const double total = a.sum().item<double>();
  if (total <= 0) return;
  r.attention_on_finding[branch] = (a * grid).sum().item<double>() / total;
  r.finding_area[branch] = grid.mean().item<double>();
}

/// Both branches' measures for one sample whose mask holds ids >= `from` (its finding); a mask
/// without a finding records nothing.
void measure_sample(const BranchAttention& maps, int64_t row, const data::Sample& sample, int64_t from,
                    const config::ImageTransformConfig& transform, CaptionRecord& r) {
  const auto ids = data::structure_ids(data::image_to_tensor(data::decode_image(sample.mask).pixels));
  const auto finding = ids.ge(from).to(at::kFloat);
  if (finding.sum().item<double>() == 0) return;
  if (maps.clip.defined()) measure_on_finding(maps.clip[row], finding, "clip", 1, 1, r);
  if (maps.sam.defined()) {
    const auto [fr, fc] = sam_valid(transform, ids.size(0), ids.size(1));  // the mask has the image's shape
    measure_on_finding(maps.sam[row], finding, "sam", fr, fc, r);
  }
}

}  // namespace

std::string file_safe(const std::string& id) {
  // Letters, digits, '.', '-' and '_' stay; every other byte becomes %XX ('%' included), so
  // two ids never share a file name ("a b" -> a%20b, "a_b" stays).
  if (id.empty()) return "%";
  static const char* kHex = "0123456789ABCDEF";
  std::string s;
  for (const char c : id) {
    const auto u = static_cast<unsigned char>(c);
    if (std::isalnum(u) || c == '.' || c == '-' || c == '_') {
      s += c;
    } else {
      s += '%';
      s += kHex[u >> 4];
      s += kHex[u & 15];
    }
  }
  return s;
}

std::string attention_map_path(const std::string& dir, const std::string& id, config::Branch branch) {
  return dir + "/" + file_safe(id) + "." + config::branch_name(branch) + ".png";
}

BatchCaptionStats caption_samples(Captioner& captioner, const std::vector<data::Sample>& samples,
                                  const BatchCaptionOptions& options,
                                  const std::function<void(const CaptionRecord&)>& on_record,
                                  core::Progress* progress) {
  MSMEDCAP_CHECK(options.batch_size >= 1, "caption: batch size must be at least 1");
  config::ImageTransformConfig transform = options.transform;
  transform.augment = false;
  transform.hflip = false;
  data::ExampleOptions eo;
  eo.require_caption = false;
  eo.keep_source = !options.attention_dir.empty();  // the overlays draw over it
  eo.clip_cache = options.clip_cache;
  eo.sam_cache = options.sam_cache;
  const bool record_attention = !options.attention_dir.empty() || options.finding_ids_from > 0;
  const auto process = data::make_example_processor(transform, eo);
  if (!options.attention_dir.empty()) {
    // Before any caption is written: the overlays need OpenCV.
    if (!core::built_with(core::Component::kOpenCv))
      core::fail_built_without(core::Component::kOpenCv, "--attention-dir: attention maps drawn over the images");
    std::filesystem::create_directories(options.attention_dir);
  }

  const auto start = std::chrono::steady_clock::now();
  BatchCaptionStats stats;
  const size_t n = samples.size(), bs = static_cast<size_t>(options.batch_size);
  auto launch = [&](size_t begin) {
    return std::async(std::launch::async, decode, std::cref(process), std::cref(samples), begin,
                      std::min(n, begin + bs), options.workers);
  };
  std::future<Decoded> next;
  if (n > 0) next = launch(0);
  for (size_t begin = 0; begin < n; begin += bs) {
    Decoded d = next.get();
    if (begin + bs < n) next = launch(begin + bs);  // decode ahead while the model runs
    std::vector<at::Tensor> clips, sams;
    bool any = false;
    for (size_t i = 0; i < d.examples.size(); ++i) {
      if (!d.examples[i]) continue;
      any = true;
      if (d.examples[i]->clip.defined()) clips.push_back(d.examples[i]->clip);
      if (d.examples[i]->sam.defined()) sams.push_back(d.examples[i]->sam);
    }
    // A model failure is not one image's fault: it ends the run.
    std::vector<Caption> captions;
    BranchAttention maps;
    if (any) {
      models::ImageInputs inputs;
      if (!clips.empty()) (options.clip_cache ? inputs.clip_features : inputs.clip_pixels) = at::stack(clips);
      if (!sams.empty()) (options.sam_cache ? inputs.sam_embeddings : inputs.sam_pixels) = at::stack(sams);
      captions = captioner.caption(std::move(inputs), record_attention ? &maps : nullptr);
    }
    size_t k = 0;
    for (size_t i = 0; i < d.examples.size(); ++i) {
      const auto& sample = samples[d.begin + i];
      CaptionRecord r;
      r.id = sample.id;
      r.image = sample.image;
      if (d.examples[i]) {
        const auto& c = captions[k];
        r.caption = c.text;
        r.score = c.score;
        if (!options.attention_dir.empty())
          write_maps(maps, static_cast<int64_t>(k), d.examples[i]->source, sample, options);
        if (options.finding_ids_from > 0 && !sample.mask.empty())
          measure_sample(maps, static_cast<int64_t>(k), sample, options.finding_ids_from, options.transform, r);
        ++k;
      } else {
        r.error = d.errors[i];
        ++stats.failed;
      }
      ++stats.images;
      on_record(r);
      if (progress) progress->advance();
    }
  }
  stats.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return stats;
}

}  // namespace msmedcap::inference
