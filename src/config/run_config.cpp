#include "msmedcap/config/run_config.h"

#include <regex>

#include "msmedcap/config/config_io.h"

namespace msmedcap::config {

void RuntimeConfig::validate() const {
  MSMEDCAP_CHECK(threads >= 0, "runtime.threads: must be >= 0 (0 = all cores), got ", threads);
  static const std::regex kDevice("^(cpu|cuda(:[0-9]+)?)$");
  MSMEDCAP_CHECK(std::regex_match(device, kDevice),
                 "runtime.device: expected cpu, cuda or "
                 "cuda:N, got '",
                 device, "'");
  static const char* kLevels[] = {"trace", "debug", "info", "warn", "error", "off"};
  MSMEDCAP_CHECK(std::find(std::begin(kLevels), std::end(kLevels), log_level) != std::end(kLevels),
                 "runtime.log_level: expected trace, debug, info, warn, error or off, got '", log_level, "'");
  MSMEDCAP_CHECK(dtype == "fp32" || dtype == "bf16" || dtype == "fp16" || dtype == "int8" || dtype == "w8a8",
                 "runtime.dtype: expected fp32, bf16, fp16, int8 or w8a8, got '", dtype, "'");
  MSMEDCAP_CHECK((dtype != "int8" && dtype != "w8a8") || device == "cpu", "runtime.dtype: ", dtype,
                 " is a CPU decoding format (int8 decoder weights); use bf16 or fp16 on CUDA");
  MSMEDCAP_CHECK(dtype != "fp16" || device != "cpu",
                 "runtime.dtype: fp16 needs a CUDA device "
                 "(LibTorch's CPU kernels lack half precision for several operations); use bf16 or fp32 on the CPU");
}

void LoadConfig::validate() const {
  for (const auto& p : allow_missing) {
    MSMEDCAP_CHECK(!p.empty(),
                   "load.allow_missing: an empty prefix would allow every tensor "
                   "to be missing; list real prefixes");
  }
  for (const auto& p : allow_unexpected) {
    MSMEDCAP_CHECK(!p.empty(),
                   "load.allow_unexpected: an empty prefix would hide every "
                   "unexpected tensor; list real prefixes");
  }
}

void RunConfig::validate() const {
  runtime.validate();
  load.validate();
  model.validate();
  data.validate("data");
  loader.validate("loader");
  train.validate("train");
  val_data.validate("val_data");
  generate.validate("generate");
  // Every reader of val_data (validation, caption and retrieve --dataset val_data) transforms its
  // images with data.transform (validation without augmentation): the model's input sizes are
  // the training ones. A val_data.transform of its own would be accepted and ignored, so it must
  // be left out or equal data.transform.
  ImageTransformConfig same = val_data.transform;
  same.augment = data.transform.augment;
  same.hflip = data.transform.hflip;
  MSMEDCAP_CHECK(
      to_json(val_data.transform) == to_json(ImageTransformConfig{}) || to_json(same) == to_json(data.transform),
      "val_data.transform: not used; val_data images are transformed with data.transform (validation "
      "without augmentation); leave it out or make it equal");
  for (size_t i = 0; i < weights.size(); ++i) {
    MSMEDCAP_CHECK(!weights[i].path.empty(), "weights[", i, "].path: must name a file or directory");
    const auto& f = weights[i].format;
    MSMEDCAP_CHECK(f == "hf" || f == "hf-lm" || f == "lavis" || f == "sam" || f == "bert" || f == "samblip", "weights[",
                   i, "].format: expected hf, hf-lm, lavis, sam, bert or samblip, got '", f, "'");
  }
}

}  // namespace msmedcap::config
