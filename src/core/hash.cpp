#include "msmedcap/core/hash.h"

namespace msmedcap::core {

uint64_t mix_seed(uint64_t seed, uint64_t a, uint64_t b, uint64_t c) {
  auto splitmix = [](uint64_t x) {
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
  };
  return splitmix(splitmix(splitmix(splitmix(seed) ^ a) ^ b) ^ c);
}

double keyed_uniform(uint64_t seed, uint64_t a, uint64_t b, uint64_t c) {
  return (static_cast<double>(mix_seed(seed, a, b, c) >> 11) + 0.5) * 0x1.0p-53;
}

}  // namespace msmedcap::core
