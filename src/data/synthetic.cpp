#include "msmedcap/data/synthetic.h"

#include <sys/stat.h>

#include <nlohmann/json.hpp>
#if MSMEDCAP_WITH_OPENCV
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#endif

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>

#include "msmedcap/core/atomic_file.h"
#include "msmedcap/core/check.h"
#include "msmedcap/core/components.h"

namespace msmedcap::data {

namespace {

/// splitmix64: a small generator whose stream is the same on every platform (the standard
/// library's distributions are not).
class Rng {
 public:
  explicit Rng(uint64_t seed) : state_(seed) {}
  uint64_t next() {
    uint64_t z = (state_ += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }
  double uniform(double lo = 0, double hi = 1) {
    return lo + (hi - lo) * static_cast<double>(next() >> 11) * 0x1.0p-53;
  }
  int64_t below(int64_t n) { return static_cast<int64_t>(next() % static_cast<uint64_t>(n)); }
  double normal() {
    const double u1 = std::max(uniform(), 1e-12), u2 = uniform();
    return std::sqrt(-2 * std::log(u1)) * std::cos(2 * M_PI * u2);
  }
  template <class T>
  const T& pick(const std::vector<T>& v) {
    return v[static_cast<size_t>(below(static_cast<int64_t>(v.size())))];
  }

 private:
  uint64_t state_;
};

uint64_t text_hash(const std::string& s) {
  uint64_t h = 1469598103934665603ULL;
  for (const unsigned char c : s) h = (h ^ c) * 1099511628211ULL;
  return h;
}

#if MSMEDCAP_WITH_OPENCV
uint64_t mix(uint64_t a, uint64_t b) { return Rng(a * 0x9e3779b97f4a7c15ULL ^ b).next(); }

const std::vector<std::string>& findings_for(const std::string& modality) {
  static const std::vector<std::string> chest = {"nodule", "mass", "effusion", "cavity", "calcification"};
  static const std::vector<std::string> brain = {"mass", "cavity", "calcification"};
  return modality == "brain_mri" ? brain : chest;
}

/// Where a lesion of `side` and `zone` sits, as image fractions (patient's left = image right).
cv::Point2d lesion_site(const SynthSpec& s) {
  const bool patient_left = s.side == "left";
  if (s.modality == "brain_mri") {
    const double y = s.zone == "upper" ? 0.32 : s.zone == "middle" ? 0.5 : 0.68;
    return {patient_left ? 0.64 : 0.36, y};
  }
  if (s.modality == "axial_ct") {
    const double y = s.zone == "upper" ? 0.36 : s.zone == "middle" ? 0.45 : 0.54;
    return {patient_left ? 0.67 : 0.33, y};
  }
  const double y = s.zone == "upper" ? 0.33 : s.zone == "middle" ? 0.5 : 0.66;
  return {patient_left ? 0.68 : 0.32, y};
}

/// The image and, when drawn, its structure masks: every shape drawn on the image is drawn with
/// its structure's id on the mask (0 background), so a later shape covers an earlier one on both.
/// `line` is the image's line type; the mask's edges are never antialiased (an id is not a shade).
struct Canvas {
  cv::Mat& img;
  cv::Mat* mask;
  template <class Draw>
  void draw(int id, double value, int line, Draw&& draw) {
    draw(img, cv::Scalar(value), line);
    if (mask != nullptr && id >= 0) draw(*mask, cv::Scalar(id), cv::LINE_8);
  }
};

/// Structure ids of the masks: anatomy below kFirstLesionId, each lesion its own id from it.
constexpr int kFirstLesionId = 10;

void draw_anatomy(Canvas& canvas, const std::string& modality, Rng& rng) {
  cv::Mat& img = canvas.img;
  const double S = img.cols;
  auto jit = [&](double v) { return v + rng.uniform(-0.015, 0.015); };
  auto pt = [&](double x, double y) { return cv::Point(static_cast<int>(jit(x) * S), static_cast<int>(jit(y) * S)); };
  auto ax = [&](double a, double b) { return cv::Size(static_cast<int>(a * S), static_cast<int>(b * S)); };
  auto ellipse = [&](int id, cv::Point c, cv::Size a, double value) {
    canvas.draw(id, value, cv::LINE_8, [&](cv::Mat& m, const cv::Scalar& v, int line) {
      cv::ellipse(m, c, a, 0, 0, 360, v, cv::FILLED, line);
    });
  };
  if (modality == "chest_xray") {
    img.setTo(20);
    ellipse(1, pt(0.5, 0.56), ax(0.43, 0.46), 150);  // body
    ellipse(2, pt(0.32, 0.5), ax(0.14, 0.3), 60);    // lungs
    ellipse(3, pt(0.68, 0.5), ax(0.14, 0.3), 60);
    ellipse(4, pt(0.53, 0.63), ax(0.11, 0.13), 175);        // heart
    const cv::Point b = pt(0.53, 0.6), a = pt(0.47, 0.18);  // this order keeps the benchmark's images
    canvas.draw(5, 165, cv::LINE_8,
                [&](cv::Mat& m, const cv::Scalar& v, int line) { cv::rectangle(m, a, b, v, cv::FILLED, line); });
    for (int k = 0; k < 8; ++k) {  // ribs: on the image only (thin lines over the lungs)
      const double y = 0.24 + 0.065 * k;
      const cv::Point l = pt(0.34, y), r = pt(0.66, y);
      const cv::Size rib = ax(0.16, 0.05);
      canvas.draw(-1, 115, cv::LINE_8, [&](cv::Mat& m, const cv::Scalar& v, int line) {
        cv::ellipse(m, l, rib, 0, 180, 360, v, 2, line);
        cv::ellipse(m, r, rib, 0, 180, 360, v, 2, line);
      });
    }
  } else if (modality == "axial_ct") {
    img.setTo(0);
    ellipse(1, pt(0.5, 0.5), ax(0.43, 0.34), 95);  // body wall
    ellipse(1, pt(0.5, 0.5), ax(0.4, 0.31), 115);
    ellipse(2, pt(0.33, 0.45), ax(0.13, 0.19), 22);  // lungs
    ellipse(3, pt(0.67, 0.45), ax(0.13, 0.19), 22);
    ellipse(4, pt(0.52, 0.5), ax(0.08, 0.07), 140);  // mediastinum
    const cv::Point c = pt(0.5, 0.74);
    const int r = static_cast<int>(0.05 * S);
    canvas.draw(5, 235, cv::LINE_8,
                [&](cv::Mat& m, const cv::Scalar& v, int line) { cv::circle(m, c, r, v, cv::FILLED, line); });
  } else {
    img.setTo(0);
    ellipse(1, pt(0.5, 0.5), ax(0.39, 0.45), 205);  // skull
    ellipse(2, pt(0.5, 0.5), ax(0.35, 0.41), 105);  // brain
    ellipse(3, pt(0.46, 0.5), ax(0.03, 0.09), 35);  // ventricles
    ellipse(4, pt(0.54, 0.5), ax(0.03, 0.09), 35);
  }
  cv::GaussianBlur(img, img, cv::Size(0, 0), 0.008 * S);
}

void draw_finding(Canvas& canvas, const SynthSpec& s, Rng& rng) {
  if (s.finding == "normal") return;
  const double S = canvas.img.cols;
  const bool small = s.size == "small";
  const cv::Point2d site = lesion_site(s);
  auto at = [&](double spread) {
    return cv::Point(static_cast<int>((site.x + rng.uniform(-spread, spread)) * S),
                     static_cast<int>((site.y + rng.uniform(-spread, spread)) * S));
  };
  auto circle = [&](int id, cv::Point c, int r, double value, int line_type) {
    canvas.draw(id, value, line_type,
                [&](cv::Mat& m, const cv::Scalar& v, int line) { cv::circle(m, c, r, v, cv::FILLED, line); });
  };
  for (int64_t k = 0; k < s.count; ++k) {
    const int id = kFirstLesionId + static_cast<int>(k);
    const cv::Point c = at(s.count > 1 ? 0.05 : 0.02);
    if (s.finding == "nodule") {
      const int r = small ? static_cast<int>(rng.uniform(1.5, 3.0)) : static_cast<int>(rng.uniform(0.02, 0.03) * S);
      circle(id, c, std::max(1, r), 200, cv::LINE_AA);
    } else if (s.finding == "mass") {
      const cv::Size axes(static_cast<int>(rng.uniform(small ? 0.02 : 0.05, small ? 0.03 : 0.08) * S),
                          static_cast<int>(rng.uniform(small ? 0.015 : 0.04, small ? 0.025 : 0.07) * S));
      const double angle = rng.uniform(0, 180);
      canvas.draw(id, 190, cv::LINE_AA, [&](cv::Mat& m, const cv::Scalar& v, int line) {
        cv::ellipse(m, c, axes, angle, 0, 360, v, cv::FILLED, line);
      });
    } else if (s.finding == "cavity") {
      const int r = static_cast<int>((small ? rng.uniform(0.01, 0.015) : rng.uniform(0.03, 0.045)) * S);
      circle(id, c, r, 210, cv::LINE_AA);
      circle(id, c, std::max(1, r * 2 / 3), 8, cv::LINE_AA);  // the lumen is part of the cavity
    } else if (s.finding == "calcification") {
      circle(id, c, small ? 1 : static_cast<int>(rng.uniform(2, 4)), 255, cv::LINE_8);
    } else if (s.finding == "effusion") {
      // Fluid filling the lung base: a bright band whose height grows with the size.
      const double h = small ? 0.05 : 0.13;
      const double x = site.x, base = s.modality == "axial_ct" ? 0.62 : 0.78;
      const cv::Point centre(static_cast<int>(x * S), static_cast<int>(base * S));
      const cv::Size axes(static_cast<int>(0.14 * S), static_cast<int>(h * S));
      canvas.draw(id, 165, cv::LINE_8, [&](cv::Mat& m, const cv::Scalar& v, int line) {
        cv::ellipse(m, centre, axes, 0, 180, 360, v, cv::FILLED, line);
      });
    }
  }
}

#endif  // MSMEDCAP_WITH_OPENCV

const char* number_word(int64_t n) {
  static const char* kWords[] = {"no", "a", "two", "three", "four", "five"};
  return n >= 0 && n <= 5 ? kWords[n] : "several";
}

}  // namespace

std::string synth_caption(const SynthSpec& s, uint64_t variant) {
  static const std::map<std::string, std::vector<std::string>> kModality = {
      {"chest_xray", {"Chest radiograph", "Chest X-ray", "Frontal chest radiograph"}},
      {"axial_ct", {"Axial CT", "Axial computed tomography image", "CT of the chest, axial view"}},
      {"brain_mri", {"Brain MRI", "Axial T2-weighted brain MRI", "MRI of the brain"}}};
  Rng rng(variant);
  const std::string mod = rng.pick(kModality.at(s.modality));
  std::string mod_lower = mod;
  mod_lower[0] = static_cast<char>(std::tolower(mod_lower[0]));
  if (s.finding == "normal") {
    const std::vector<std::string> t = {mod + " with no abnormality.", "Normal " + mod_lower + ".",
                                        mod + ": no acute findings.", "Unremarkable " + mod_lower + "."};
    return rng.pick(t);
  }
  std::string desc;
  if (s.finding == "effusion") {
    desc = std::string("a ") + s.size + " " + s.side + " pleural effusion";
  } else {
    const std::string noun = s.count > 1 ? s.finding + "s" : s.finding;
    desc = std::string(number_word(s.count)) + " " + s.size + " " + noun;
    std::string region;
    if (s.modality == "brain_mri") {
      const std::string lobe = s.zone == "upper" ? "frontal" : s.zone == "middle" ? "parietal" : "occipital";
      region = s.side + " " + lobe + " lobe";
    } else {
      region = s.side + " " + s.zone + " " + (rng.uniform() < 0.5 ? "lobe" : "zone");
    }
    desc += " in the " + region;
  }
  const std::vector<std::string> t = {mod + " showing " + desc + ".", mod + ": " + desc + ".",
                                      "There is " + desc + " on this " + mod_lower + ".",
                                      mod + " demonstrates " + desc + "."};
  return rng.pick(t);
}

bool held_out_combination(const SynthSpec& s) {
  if (s.finding == "normal") return false;
  return text_hash(s.modality + "|" + s.finding + "|" + s.side + "|" + s.zone) % 5 == 0;
}

#if MSMEDCAP_WITH_OPENCV

std::vector<uint8_t> render_study(const SynthSpec& spec, int64_t size, uint64_t seed, std::vector<uint8_t>* mask) {
  MSMEDCAP_CHECK(size >= 64 && size <= 4096, "synth: image size must be within 64..4096, got ", size);
  cv::Mat img(static_cast<int>(size), static_cast<int>(size), CV_8UC1);
  cv::Mat ids = cv::Mat::zeros(static_cast<int>(size), static_cast<int>(size), CV_8UC1);
  Canvas canvas{img, mask != nullptr ? &ids : nullptr};
  Rng anatomy(seed);
  draw_anatomy(canvas, spec.modality, anatomy);
  Rng lesions(mix(seed, 1));
  draw_finding(canvas, spec, lesions);
  if (mask != nullptr) mask->assign(ids.data, ids.data + size * size);
  // Acquisition noise.
  Rng noise(mix(seed, 2));
  std::vector<uint8_t> out(static_cast<size_t>(size * size));
  for (size_t i = 0; i < out.size(); ++i) {
    const double v = img.data[i] + 5.0 * noise.normal();
    out[i] = static_cast<uint8_t>(std::clamp(std::lround(v), 0L, 255L));
  }
  return out;
}

std::vector<int64_t> write_synthetic_dataset(const std::string& dir, const SynthOptions& options) {
  MSMEDCAP_CHECK(options.n > 0, "synth: --n must be > 0");
  MSMEDCAP_CHECK(options.val_fraction >= 0 && options.seen_test_fraction >= 0 &&
                     options.val_fraction + options.seen_test_fraction < 1,
                 "synth: --val-fraction (", options.val_fraction, ") and --seen-test-fraction (",
                 options.seen_test_fraction, ") must be >= 0 and add up to less than 1");
  const std::string images = dir + "/images", masks = dir + "/masks";
  ::mkdir(dir.c_str(), 0755);
  for (const auto& folder : {images, masks}) {
    ::mkdir(folder.c_str(), 0755);
    struct stat st {};
    MSMEDCAP_CHECK(stat(folder.c_str(), &st) == 0 && S_ISDIR(st.st_mode), folder, ": cannot create the folder");
  }
  Rng rng(options.seed);
  const std::vector<std::string> modalities = {"chest_xray", "axial_ct", "brain_mri"};
  std::string lines[4];  // train, val, test, test_seen
  std::vector<int64_t> counts(4, 0);
  for (int64_t i = 0; i < options.n; ++i) {
    SynthSpec s;
    s.modality = rng.pick(modalities);
    s.finding = rng.uniform() < 0.15 ? "normal" : rng.pick(findings_for(s.modality));
    if (s.finding != "normal") {
      s.size = rng.uniform() < 0.5 ? "small" : "large";
      s.side = rng.uniform() < 0.5 ? "left" : "right";
      s.zone = s.finding == "effusion" ? "lower" : rng.pick(std::vector<std::string>{"upper", "middle", "lower"});
      s.count = (s.finding == "nodule" || s.finding == "calcification") ? 1 + rng.below(3) : 1;
    }
    const uint64_t study_seed = mix(options.seed, static_cast<uint64_t>(i) + 17);
    char id[32];
    std::snprintf(id, sizeof(id), "synth_%05lld", static_cast<long long>(i));
    std::vector<uint8_t> mask;
    const auto pixels = render_study(s, options.image_size, study_seed, &mask);
    auto write_png = [&](const std::string& path, const std::vector<uint8_t>& bytes) {
      const cv::Mat img(static_cast<int>(options.image_size), static_cast<int>(options.image_size), CV_8UC1,
                        const_cast<uint8_t*>(bytes.data()));
      std::vector<uint8_t> png;
      MSMEDCAP_CHECK(cv::imencode(".png", img, png), "synth: PNG encoding failed");
      core::write_file_atomic(path, std::string_view(reinterpret_cast<const char*>(png.data()), png.size()));
    };
    write_png(images + "/" + id + ".png", pixels);
    write_png(masks + "/" + id + ".png", mask);
    const double r = rng.uniform();
    int split = held_out_combination(s)                                 ? 2
                : r < options.val_fraction                              ? 1
                : r < options.val_fraction + options.seen_test_fraction ? 3
                                                                        : 0;
    if (s.finding == "normal" && r > 0.9) split = 2;  // some normal studies in test too
    nlohmann::ordered_json row;
    row["id"] = id;
    row["image"] = std::string("images/") + id + ".png";
    row["mask"] = std::string("masks/") + id + ".png";
    row["caption"] = synth_caption(s, mix(study_seed, 3));
    row["modality"] = s.modality;
    row["finding"] = s.finding;
    row["size"] = s.size;
    row["side"] = s.side;
    row["zone"] = s.zone;
    row["count"] = s.count;
    lines[split] += row.dump() + "\n";
    ++counts[static_cast<size_t>(split)];
  }
  const char* names[] = {"train", "val", "test", "test_seen"};
  for (int k = 0; k < 4; ++k) core::write_file_atomic(dir + "/" + names[k] + ".jsonl", lines[k]);
  return counts;
}

#else

std::vector<uint8_t> render_study(const SynthSpec&, int64_t, uint64_t, std::vector<uint8_t>*) {
  core::fail_built_without(core::Component::kOpenCv, "drawing the synthetic benchmark's images");
}

std::vector<int64_t> write_synthetic_dataset(const std::string&, const SynthOptions&) {
  core::fail_built_without(core::Component::kOpenCv, "writing the synthetic benchmark's images");
}

#endif  // MSMEDCAP_WITH_OPENCV

}  // namespace msmedcap::data
