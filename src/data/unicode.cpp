#include "msmedcap/data/unicode.h"

#if MSMEDCAP_WITH_ICU
#include <unicode/locid.h>
#include <unicode/normalizer2.h>
#include <unicode/uchar.h>
#include <unicode/unistr.h>
#endif

#include <algorithm>
#include <cstdio>

#include "msmedcap/core/check.h"
#include "msmedcap/core/components.h"

namespace msmedcap::data::unicode {

namespace detail {

// Unicode's general categories of the ASCII code points (UnicodeData.txt), which a build
// without ICU still knows; a test checks them against ICU.
const char* ascii_category(char32_t c) {
  if (c < 0x20 || c == 0x7f) return "Cc";
  if (c == ' ') return "Zs";
  if (c >= '0' && c <= '9') return "Nd";
  if (c >= 'A' && c <= 'Z') return "Lu";
  if (c >= 'a' && c <= 'z') return "Ll";
  switch (c) {
    case '$':
      return "Sc";
    case '(':
    case '[':
    case '{':
      return "Ps";
    case ')':
    case ']':
    case '}':
      return "Pe";
    case '+':
    case '<':
    case '=':
    case '>':
    case '|':
    case '~':
      return "Sm";
    case '-':
      return "Pd";
    case '^':
    case '`':
      return "Sk";
    case '_':
      return "Pc";
    default:
      return "Po";  // ! " # % & ' * , . / : ; ? @ backslash
  }
}

bool ascii_space(char32_t c) { return c == ' ' || (c >= 0x09 && c <= 0x0d); }

}  // namespace detail

namespace {

bool all_ascii(std::u32string_view text) {
  return std::all_of(text.begin(), text.end(), [](char32_t c) { return c < 0x80; });
}

#if !MSMEDCAP_WITH_ICU
[[noreturn]] void no_icu(char32_t c) {
  core::fail_built_without(
      core::Component::kIcu, "Unicode facts of U+" + [c] {
        char hex[16];
        std::snprintf(hex, sizeof(hex), "%04X", static_cast<unsigned>(c));
        return std::string(hex);
      }() + ": this build knows ASCII text only");
}

char32_t first_non_ascii(std::u32string_view text) {
  return *std::find_if(text.begin(), text.end(), [](char32_t c) { return c >= 0x80; });
}
#endif

#if MSMEDCAP_WITH_ICU

icu::UnicodeString to_icu(std::u32string_view text) {
  return icu::UnicodeString::fromUTF32(reinterpret_cast<const UChar32*>(text.data()),
                                       static_cast<int32_t>(text.size()));
}

std::u32string from_icu(const icu::UnicodeString& s) {
  std::u32string out(static_cast<size_t>(s.countChar32()), U'\0');
  UErrorCode status = U_ZERO_ERROR;
  s.toUTF32(reinterpret_cast<UChar32*>(out.data()), static_cast<int32_t>(out.size()), status);
  MSMEDCAP_CHECK(U_SUCCESS(status) || status == U_STRING_NOT_TERMINATED_WARNING, "unicode: UTF-32 conversion failed");
  return out;
}

#endif

std::u32string normalize(std::u32string_view text, bool compose) {
  if (all_ascii(text)) return std::u32string(text);  // ASCII text is its own NFD and NFC
#if MSMEDCAP_WITH_ICU
  UErrorCode status = U_ZERO_ERROR;
  const icu::Normalizer2* n =
      compose ? icu::Normalizer2::getNFCInstance(status) : icu::Normalizer2::getNFDInstance(status);
  MSMEDCAP_CHECK(U_SUCCESS(status), "unicode: ICU normalizer unavailable");
  const icu::UnicodeString out = n->normalize(to_icu(text), status);
  MSMEDCAP_CHECK(U_SUCCESS(status), "unicode: normalization failed");
  return from_icu(out);
#else
  no_icu(first_non_ascii(text));
#endif
}

}  // namespace

std::u32string decode_utf8(std::string_view text) {
  std::u32string out;
  out.reserve(text.size());
  size_t i = 0;
  const size_t n = text.size();
  auto byte = [&](size_t k) { return static_cast<unsigned char>(text[k]); };
  while (i < n) {
    const unsigned char b = byte(i);
    int len = 0;
    char32_t cp = 0;
    if (b < 0x80) {
      cp = b;
      len = 1;
    } else if (b >= 0xC2 && b <= 0xDF) {
      cp = b & 0x1F;
      len = 2;
    } else if (b >= 0xE0 && b <= 0xEF) {
      cp = b & 0x0F;
      len = 3;
    } else if (b >= 0xF0 && b <= 0xF4) {
      cp = b & 0x07;
      len = 4;
    }
    bool ok = len > 0 && i + len <= n;
    for (int k = 1; ok && k < len; ++k) {
      const unsigned char c = byte(i + k);
      ok = (c & 0xC0) == 0x80;
      cp = (cp << 6) | (c & 0x3F);
    }
    // Reject overlong forms, surrogates and values past U+10FFFF.
    if (ok &&
        ((len == 3 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) || (len == 4 && (cp < 0x10000 || cp > 0x10FFFF))))
      ok = false;
    if (!ok) {
      out.push_back(0xFFFD);
      ++i;
      continue;
    }
    out.push_back(cp);
    i += len;
  }
  return out;
}

std::string encode_utf8(char32_t c) {
  std::string s;
  if (c < 0x80) {
    s.push_back(static_cast<char>(c));
  } else if (c < 0x800) {
    s.push_back(static_cast<char>(0xC0 | (c >> 6)));
    s.push_back(static_cast<char>(0x80 | (c & 0x3F)));
  } else if (c < 0x10000) {
    s.push_back(static_cast<char>(0xE0 | (c >> 12)));
    s.push_back(static_cast<char>(0x80 | ((c >> 6) & 0x3F)));
    s.push_back(static_cast<char>(0x80 | (c & 0x3F)));
  } else {
    s.push_back(static_cast<char>(0xF0 | (c >> 18)));
    s.push_back(static_cast<char>(0x80 | ((c >> 12) & 0x3F)));
    s.push_back(static_cast<char>(0x80 | ((c >> 6) & 0x3F)));
    s.push_back(static_cast<char>(0x80 | (c & 0x3F)));
  }
  return s;
}

std::string encode_utf8(std::u32string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char32_t c : text) out += encode_utf8(c);
  return out;
}

const char* category(char32_t c) {
  if (c < 0x80) return detail::ascii_category(c);
#if MSMEDCAP_WITH_ICU
  static const char* const kNames[] = {"Cn", "Lu", "Ll", "Lt", "Lm", "Lo", "Mn", "Me", "Mc", "Nd",
                                       "Nl", "No", "Zs", "Zl", "Zp", "Cc", "Cf", "Co", "Cs", "Pd",
                                       "Ps", "Pe", "Pc", "Po", "Sm", "Sc", "Sk", "So", "Pi", "Pf"};
  const int8_t t = u_charType(static_cast<UChar32>(c));
  return (t >= 0 && t < static_cast<int8_t>(sizeof(kNames) / sizeof(kNames[0]))) ? kNames[t] : "Cn";
#else
  no_icu(c);
#endif
}

bool is_letter(char32_t c) {
  if (c < 0x80) return detail::ascii_category(c)[0] == 'L';
#if MSMEDCAP_WITH_ICU
  return (U_GET_GC_MASK(static_cast<UChar32>(c)) & U_GC_L_MASK) != 0;
#else
  no_icu(c);
#endif
}

bool is_number(char32_t c) {
  if (c < 0x80) return detail::ascii_category(c)[0] == 'N';
#if MSMEDCAP_WITH_ICU
  return (U_GET_GC_MASK(static_cast<UChar32>(c)) & U_GC_N_MASK) != 0;
#else
  no_icu(c);
#endif
}

bool is_space(char32_t c) {
  if (c < 0x80) return detail::ascii_space(c);
#if MSMEDCAP_WITH_ICU
  return u_isUWhiteSpace(static_cast<UChar32>(c)) != 0;
#else
  no_icu(c);
#endif
}

std::u32string to_lower(std::u32string_view text) {
  if (all_ascii(text)) {
    std::u32string out(text);
    for (char32_t& c : out) c = (c >= 'A' && c <= 'Z') ? c + 32 : c;
    return out;
  }
#if MSMEDCAP_WITH_ICU
  icu::UnicodeString s = to_icu(text);
  s.toLower(icu::Locale::getRoot());
  return from_icu(s);
#else
  no_icu(first_non_ascii(text));
#endif
}

std::u32string nfd(std::u32string_view text) { return normalize(text, false); }
std::u32string nfc(std::u32string_view text) { return normalize(text, true); }

}  // namespace msmedcap::data::unicode
