#pragma once
/// Errors and checks: msmedcap's one error type and the MSMEDCAP_CHECK / MSMEDCAP_FAIL macros.
/// Every check throws msmedcap::Error with a one-line message that names the file, key, line or
/// shape at fault; only main() catches.

#include <sstream>
#include <stdexcept>
#include <string>

namespace msmedcap {

/// The project's error type. what() is a single line meant for the user.
class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message) : std::runtime_error(message) {}
};

namespace detail {
/// Streams every argument into one string (MSMEDCAP_CHECK's message builder).
template <class... Args>
std::string concat(const Args&... args) {
  std::ostringstream out;
  (out << ... << args);
  return out.str();
}
}  // namespace detail

}  // namespace msmedcap

/// Throws msmedcap::Error built from the remaining arguments when `cond` is false.
#define MSMEDCAP_CHECK(cond, ...)                                       \
  do {                                                                  \
    if (!(cond)) {                                                      \
      throw ::msmedcap::Error(::msmedcap::detail::concat(__VA_ARGS__)); \
    }                                                                   \
  } while (false)

/// Throws msmedcap::Error built from the arguments.
#define MSMEDCAP_FAIL(...) throw ::msmedcap::Error(::msmedcap::detail::concat(__VA_ARGS__))
