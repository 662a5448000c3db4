#include "msmedcap/models/provenance.h"

#include <cstdio>
#include <cstring>

#include <torch/torch.h>

#include "msmedcap/core/check.h"

namespace msmedcap::models {
namespace {

struct Hasher {
  uint64_t h = 0xcbf29ce484222325ull;
  void bytes(const void* data, size_t n) {
    const auto* p = static_cast<const unsigned char*>(data);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
      uint64_t w;
      std::memcpy(&w, p + i, 8);
      h = (h ^ w) * 0x100000001b3ull;
      h ^= h >> 29;
    }
    for (; i < n; ++i) h = (h ^ p[i]) * 0x100000001b3ull;
  }
  void text(const std::string& s) { bytes(s.data(), s.size()); }
};

}  // namespace

std::string parameter_fingerprint(const torch::nn::Module& module) {
  Hasher hasher;
  auto add = [&](const std::string& name, const torch::Tensor& t) {
    const torch::Tensor c = t.detach().to(torch::kCPU).contiguous();
    hasher.text(name);
    hasher.text(std::string(c.dtype().name()));
    for (int64_t d : c.sizes()) hasher.bytes(&d, sizeof(d));
    hasher.bytes(c.data_ptr(), c.nbytes());
  };
  for (const auto& p : module.named_parameters(true)) add(p.key(), p.value());
  for (const auto& b : module.named_buffers(true)) add(b.key(), b.value());
  char out[17];
  std::snprintf(out, sizeof(out), "%016llx", static_cast<unsigned long long>(hasher.h));
  return out;
}

config::Json encoder_provenance(MsMedCapModelImpl& model, config::Branch branch,
                                const config::ImageTransformConfig& transform) {
  config::Json p;
  p["version"] = 1;
  p["branch"] = config::branch_name(branch);
  if (branch == config::Branch::kSam) {
    MSMEDCAP_CHECK(model.config().use_sam, "feature provenance: the model's SAM branch is off");
    p["encoder"] = config::to_json(model.config().sam);
    p["weights"] = parameter_fingerprint(*model.sam_model);
    p["transform"] = {{"sam_size", transform.sam_size},
                      {"sam_input_from_clip_tensor", transform.sam_input_from_clip_tensor},
                      {"dicom_window", transform.dicom_window}};
    if (transform.sam_input_from_clip_tensor) p["transform"]["clip_size"] = transform.clip_size;
  } else {
    MSMEDCAP_CHECK(model.config().use_clip, "feature provenance: the model's CLIP branch is off");
    p["encoder"] = config::to_json(model.config().vision);
    p["weights"] = parameter_fingerprint(*model.vision_model);
    p["transform"] = {{"clip_size", transform.clip_size}, {"dicom_window", transform.dicom_window}};
  }
  return p;
}

}  // namespace msmedcap::models
