#pragma once
/// The built-in synthetic benchmark: grey-scale radiology-like images (chest radiograph, axial
/// CT, brain MRI styles) with findings (nodule, mass, effusion, cavity, calcification) or none,
/// varying in side, zone, size (small ones only a few pixels across, hard to see at the CLIP
/// branch's 224 px) and count, with captions from varied templates. Deterministic by seed;
/// written in the generic JSONL layout with train/val/test/test_seen splits: the test split holds
/// (modality, finding, side, zone) combinations never seen in training (compositional), the
/// test_seen split unseen studies of combinations that training has (in distribution).
///
/// Laterality follows the radiological convention: the patient's left is on the image's right.

#include <cstdint>
#include <string>
#include <vector>

namespace msmedcap::data {

/// What one synthetic study shows.
struct SynthSpec {
  std::string modality;  ///< chest_xray, axial_ct, brain_mri
  std::string finding;   ///< nodule, mass, effusion, cavity, calcification, normal
  std::string size;      ///< small, large ("" for normal)
  std::string side;      ///< left, right ("" for normal)
  std::string zone;      ///< upper, middle, lower ("" for normal)
  int64_t count = 0;     ///< number of lesions (0 for normal)
};

/// Options of `msmedcap synth`.
struct SynthOptions {
  int64_t n = 300;  ///< studies in all splits together
  uint64_t seed = 0;
  int64_t image_size = 512;  ///< square images
  double val_fraction = 0.1;
  /// Share of the studies of seen combinations kept out of training for test_seen.
  double seen_test_fraction = 0.1;
};

/// Renders one study as an 8-bit grey image (row-major bytes, size x size); `seed` drives the
/// anatomy and noise. With `mask`, also its structure masks (same layout): 0 background, 1..9 the
/// anatomy (body or skull, lungs or brain, heart, spine, ventricles), 10 + k the k-th lesion.
std::vector<uint8_t> render_study(const SynthSpec& spec, int64_t size, uint64_t seed,
                                  std::vector<uint8_t>* mask = nullptr);

/// A caption for `spec`, wording picked by `variant`.
std::string synth_caption(const SynthSpec& spec, uint64_t variant);

/// True when (modality, finding, side, zone) is held out of training for the test split.
bool held_out_combination(const SynthSpec& spec);

/// Writes DIR/images/*.png, their structure masks DIR/masks/*.png (render_study) and
/// DIR/{train,val,test,test_seen}.jsonl (lines {"id", "image", "mask", "caption", "modality",
/// "finding", "size", "side", "zone", "count"}). Returns the number of studies per split (train,
/// val, test, test_seen).
std::vector<int64_t> write_synthetic_dataset(const std::string& dir, const SynthOptions& options);

}  // namespace msmedcap::data
