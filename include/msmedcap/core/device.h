#pragma once
/// Device selection: `--device cpu|cuda|cuda:N`, with a clear error when CUDA is absent.

#include <c10/core/Device.h>

#include <string>

namespace msmedcap::core {

/// Parses and validates a device name. Throws msmedcap::Error when the name is malformed, when
/// this LibTorch build or machine has no CUDA, or when the index is beyond the device count.
c10::Device parse_device(const std::string& name);

/// True when LibTorch reports at least one usable CUDA device.
bool cuda_available();

}  // namespace msmedcap::core
