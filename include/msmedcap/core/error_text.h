#pragma once
/// What an exception says, made fit for one line of a log or an error record: the first line
/// only (LibTorch's errors without their stack trace), at most kMaxErrorChars characters.

#include <cstddef>
#include <exception>
#include <string>

namespace msmedcap::core {

constexpr size_t kMaxErrorChars = 1000;

/// The exception's message as one short line.
std::string error_text(const std::exception& e);

/// `text`'s first line, cut to `max_chars` (with "..." and the number of characters left out).
std::string one_line(const std::string& text, size_t max_chars = kMaxErrorChars);

}  // namespace msmedcap::core
