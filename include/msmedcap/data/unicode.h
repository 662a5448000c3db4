#pragma once
/// The Unicode facts the tokenizers need (through ICU): UTF-8 <-> code points, general
/// categories as Python's unicodedata reports them, lower-casing and NFD/NFC. ASCII is answered
/// without ICU; a build without it (component icu) fails on any other code point with "built
/// without icu".

#include <string>
#include <string_view>

namespace msmedcap::data::unicode {

/// Code points of UTF-8 text; invalid bytes become U+FFFD (as Python's errors="replace").
std::u32string decode_utf8(std::string_view text);
std::string encode_utf8(std::u32string_view text);
std::string encode_utf8(char32_t c);

/// Two-letter general category, e.g. "Lu", "Mn", "Zs", "Cc".
const char* category(char32_t c);
bool is_letter(char32_t c);  ///< \p{L}
bool is_number(char32_t c);  ///< \p{N}
bool is_space(char32_t c);   ///< Python regex \s (Unicode White_Space)

/// Full lower-case mapping (Python str.lower()).
std::u32string to_lower(std::u32string_view text);
/// Canonical decomposition (NFD) and composition (NFC).
std::u32string nfd(std::u32string_view text);
std::u32string nfc(std::u32string_view text);

namespace detail {
/// The general category and White_Space of an ASCII code point (c < 0x80), from our own table.
const char* ascii_category(char32_t c);
bool ascii_space(char32_t c);
}  // namespace detail

}  // namespace msmedcap::data::unicode
