#pragma once
/// What made a frozen encoder's output: its config, a fingerprint of its weights and the
/// preprocessing. Feature caches store it; training compares it before using a cache.

#include <string>

#include <torch/nn/module.h>

#include "msmedcap/config/data_config.h"
#include "msmedcap/config/fields.h"
#include "msmedcap/models/msmedcap.h"

namespace msmedcap::models {

/// 64-bit hash (hex) of a module's parameters and buffers: names, dtypes, shapes and bytes.
std::string parameter_fingerprint(const torch::nn::Module& module);

/// Provenance of `branch` of `model` under `transform` (its "branch" field: "clip" or "sam").
config::Json encoder_provenance(MsMedCapModelImpl& model, config::Branch branch,
                                const config::ImageTransformConfig& transform);

}  // namespace msmedcap::models
