#pragma once
/// Seeds derived from seeds: the one mixing function every keyed draw uses (data order, caption
/// picks, hard negatives, dropout masks), so that a draw depends on its keys and nothing else.

#include <cstdint>

namespace msmedcap::core {

/// SplitMix64 of a seed and three values: independent, reproducible streams.
uint64_t mix_seed(uint64_t seed, uint64_t a, uint64_t b = 0, uint64_t c = 0);

/// A uniform double in (0, 1) keyed by the same values: mix_seed's top 53 bits, centred in their
/// interval (never 0 or 1, so its logarithm is finite).
double keyed_uniform(uint64_t seed, uint64_t a, uint64_t b = 0, uint64_t c = 0);

}  // namespace msmedcap::core
