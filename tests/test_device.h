#pragma once
// The device the golden model tests run on: MSMEDCAP_TEST_DEVICE ("cpu" unless set; "cuda" in
// scripts/gpu_check.sh). Models and the reference inputs go there; results come back to the CPU
// to be compared with the same tolerances (LibTorch keeps TF32 off for float32 products unless
// asked, so CUDA float32 meets the CPU's 1e-4).
#include <c10/core/Device.h>

#include <cstdlib>
#include <string>

namespace msmedcap::testing {

inline c10::Device test_device() {
  const char* name = std::getenv("MSMEDCAP_TEST_DEVICE");
  return c10::Device(name != nullptr && *name != '\0' ? std::string(name) : std::string("cpu"));
}

}  // namespace msmedcap::testing
