#include "msmedcap/core/error_text.h"

namespace msmedcap::core {

std::string one_line(const std::string& text, size_t max_chars) {
  std::string line = text.substr(0, text.find('\n'));
  if (!line.empty() && line.back() == '\r') line.pop_back();
  if (line.size() <= max_chars) return line;
  return line.substr(0, max_chars) + "... (" + std::to_string(line.size() - max_chars) + " more characters)";
}

// LibTorch's c10::Error::what() is the message, then "Exception raised from ..." and the C++
// stack on the following lines: the first line is the message alone. (Kept free of LibTorch so
// the torch-free parsers, fuzzed on their own, can use it.)
std::string error_text(const std::exception& e) { return one_line(e.what()); }

}  // namespace msmedcap::core
