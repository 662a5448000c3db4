#include "msmedcap/core/device.h"

#include <torch/cuda.h>

#include <fstream>
#include <regex>

#include "msmedcap/core/check.h"

namespace msmedcap::core {

bool cuda_available() { return torch::cuda::is_available(); }

void synchronize(const c10::Device& device) {
  if (device.is_cuda()) torch::cuda::synchronize(device.index() < 0 ? -1 : device.index());
}

namespace {
double status_mb(const std::string& field) {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(field + ":", 0) == 0) return std::stod(line.substr(field.size() + 1)) / 1024.0;
  }
  return 0.0;
}
}  // namespace

c10::ScalarType parse_dtype(const std::string& name, const std::string& what) {
  if (name == "fp32") return c10::kFloat;
  if (name == "bf16") return c10::kBFloat16;
  if (name == "fp16") return c10::kHalf;
  MSMEDCAP_FAIL(what, ": expected fp32, bf16 or fp16, got '", name, "'");
}

double resident_mb() { return status_mb("VmRSS"); }
double peak_resident_mb() { return status_mb("VmHWM"); }

c10::Device parse_device(const std::string& name) {
  static const std::regex kPattern("^(cpu|cuda)(:([0-9]+))?$");
  std::smatch m;
  MSMEDCAP_CHECK(std::regex_match(name, m, kPattern), "--device: unknown device '", name,
                 "' (expected cpu, cuda or cuda:N)");
  if (m[1] == "cpu") {
    MSMEDCAP_CHECK(!m[2].matched, "--device: '", name, "': the CPU device takes no index");
    return c10::Device(c10::kCPU);
  }
  MSMEDCAP_CHECK(cuda_available(), "--device ", name,
                 ": CUDA is not available (this LibTorch build or machine has no CUDA device); "
                 "use --device cpu");
  int index = 0;
  if (m[3].matched) {
    const std::string digits = m[3];
    MSMEDCAP_CHECK(digits.size() <= 4, "--device ", name, ": index out of range");
    index = std::stoi(digits);
  }
  const auto count = static_cast<int>(torch::cuda::device_count());
  MSMEDCAP_CHECK(index < count, "--device ", name, ": only ", count, " CUDA device(s) present");
  return c10::Device(c10::kCUDA, static_cast<c10::DeviceIndex>(index));
}

}  // namespace msmedcap::core
