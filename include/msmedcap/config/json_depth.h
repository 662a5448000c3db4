#pragma once
/// The nesting budget of every JSON input (configs, annotations, JSONL rows, tokenizer files,
/// safetensors headers, checkpoint state). Deeply nested JSON is checked in one pass over the
/// text before it is parsed: a tree 100000 levels deep overflows the stack of the recursive code
/// that copies, compares or prints it.

#include <cstddef>
#include <string>

namespace msmedcap::config {

/// The deepest nesting accepted; real files use fewer than 10 levels.
constexpr int kMaxJsonDepth = 100;

/// Throws "<origin>:<line>: JSON nested deeper than 100 levels" when [begin, end) opens more
/// than kMaxJsonDepth arrays/objects at once (brackets inside strings do not count).
void check_json_depth(const char* begin, const char* end, const std::string& origin);
inline void check_json_depth(const std::string& text, const std::string& origin) {
  check_json_depth(text.data(), text.data() + text.size(), origin);
}

}  // namespace msmedcap::config
