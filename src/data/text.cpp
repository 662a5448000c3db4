#include "msmedcap/data/text.h"

namespace msmedcap::data {

std::string clean_caption(const std::string& caption, const CaptionCleaning& options) {
  std::string s;
  s.reserve(caption.size());
  for (const char raw : caption) {
    char c = raw;
    if (options.lowercase && c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    if (options.strip_chars.find(c) != std::string::npos) c = ' ';
    s += c;
  }
  // Collapse whitespace runs to single spaces and trim (re.sub(r"\s{2,}", " ") then strip).
  std::string out;
  int64_t words = 0;
  bool pending_space = false;
  for (const char c : s) {
    const bool space = c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
    if (space) {
      pending_space = !out.empty();
      continue;
    }
    if (pending_space) {
      if (options.max_words > 0 && words >= options.max_words) break;
      out += ' ';
      pending_space = false;
    }
    if (out.empty() || out.back() == ' ') ++words;
    if (options.max_words > 0 && words > options.max_words) break;
    out += c;
  }
  return options.prompt + out;
}

}  // namespace msmedcap::data
