#pragma once
// The fuzz targets' bodies: each feeds arbitrary bytes to one parser of untrusted input. A target
// returns normally when the parser accepted the bytes or refused them with msmedcap::Error (a
// named error is the right answer to bad input); anything else escapes: another exception type,
// a broken invariant (std::logic_error), or a sanitizer report. libFuzzer drives them from
// fuzz_main.cpp; the unit suite replays every kept crash input (tests/data/fuzz/<target>/).
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace msmedcap::fuzz {

using Target = void (*)(const uint8_t* data, size_t size);

/// safetensors, config, datasets, tokenizers, sentencepiece, image, csv, json_depth.
std::vector<std::string> target_names();
/// The target called `name`; throws std::invalid_argument for an unknown name.
Target target(const std::string& name);

}  // namespace msmedcap::fuzz
