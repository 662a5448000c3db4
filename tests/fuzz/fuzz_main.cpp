// The libFuzzer entry point of one target, chosen at compile time (MSMEDCAP_FUZZ_TARGET).
#include <cstddef>
#include <cstdint>

#include "targets.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const msmedcap::fuzz::Target target = msmedcap::fuzz::target(MSMEDCAP_FUZZ_TARGET);
  target(data, size);
  return 0;
}
