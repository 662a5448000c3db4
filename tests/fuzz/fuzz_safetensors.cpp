// The safetensors reader on arbitrary bytes: it either throws msmedcap::Error or yields a table
// whose every tensor's bytes lie inside the image (read here, so ASan sees any overrun).
#include <cstdint>
#include <string>

#include "msmedcap/core/check.h"
#include "msmedcap/io/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    const auto file = msmedcap::io::SafetensorsFile::from_bytes(std::string(reinterpret_cast<const char*>(data), size), "fuzz");
    volatile uint8_t sink = 0;
    for (const auto& t : file.tensors()) {
      if (t.num_bytes() == 0) continue;
      const uint8_t* p = file.data(t);
      sink = sink ^ p[0] ^ p[t.num_bytes() - 1];
      if (file.find(t.name) != &t) __builtin_trap();
    }
    for (const auto& [key, value] : file.metadata()) sink = sink ^ static_cast<uint8_t>(key.size() + value.size());
  } catch (const msmedcap::Error&) {
  }
  return 0;
}
