#pragma once
/// Device selection: `--device cpu|cuda|cuda:N`, with a clear error when CUDA is absent.

#include <c10/core/Device.h>
#include <c10/core/ScalarType.h>

#include <string>

namespace msmedcap::core {

/// Parses and validates a device name. Throws msmedcap::Error when the name is malformed, when
/// this LibTorch build or machine has no CUDA, or when the index is beyond the device count.
c10::Device parse_device(const std::string& name);

/// The scalar type of a precision name: fp32, bf16 or fp16 (`what` names the key in errors).
c10::ScalarType parse_dtype(const std::string& name, const std::string& what = "--dtype");

/// True when LibTorch reports at least one usable CUDA device.
bool cuda_available();

/// Waits for the device's queued work (CUDA), so that a timer read after it covers the work;
/// nothing on the CPU.
void synchronize(const c10::Device& device);

/// This process' resident memory now (VmRSS) and at its peak (VmHWM), in MiB, from
/// /proc/self/status; 0 where unavailable.
double resident_mb();
double peak_resident_mb();

}  // namespace msmedcap::core
