#pragma once
/// Caption cleaning as LAVIS/BLIP's BlipCaptionProcessor.pre_caption does it: lowercase, each of
/// `.!"()*#:;~` replaced by a space, whitespace collapsed, trimmed, cut to max_words words, the
/// prompt prepended. Every step is configurable. Differences from the Python: only ASCII letters
/// are lowercased, and a single tab or newline also becomes a space (LAVIS collapses only runs
/// of two or more whitespace characters).

#include <cstdint>
#include <string>

#include "msmedcap/config/fields.h"

namespace msmedcap::data {

/// pre_caption settings (LAVIS defaults).
struct CaptionCleaning {
  bool lowercase = true;                    ///< ASCII letters only; other UTF-8 is kept as is
  std::string strip_chars = ".!\"()*#:;~";  ///< each becomes a space
  int64_t max_words = 50;                   ///< 0 = no limit
  std::string prompt;                       ///< prepended after cleaning (e.g. "a photo of ")

  template <class V>
  void visit(V& v) {
    v("lowercase", lowercase, "lowercase ASCII letters");
    v("strip_chars", strip_chars, "characters replaced by a space");
    v("max_words", max_words, "keep at most this many words; 0 = all");
    v("prompt", prompt, "text prepended after cleaning");
  }
};

/// The cleaned caption.
std::string clean_caption(const std::string& caption, const CaptionCleaning& options = {});

}  // namespace msmedcap::data
