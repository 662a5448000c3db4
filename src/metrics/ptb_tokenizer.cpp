#include "msmedcap/metrics/ptb_tokenizer.h"

#include <algorithm>
#include <cctype>
#include <cstring>
#include <set>
#include <vector>

namespace msmedcap::metrics {
namespace {

/// Abbreviations whose final period PTBLexer keeps (the common part of its ABBREV lists,
/// lower-case; the first letter may be upper-case in the text).
const std::set<std::string>& abbreviations() {
  static const std::set<std::string> k = {
      "mr",  "mrs", "ms",     "dr",   "prof", "st",  "jr",   "sr",   "fig",  "figs", "no",  "nos", "vol",
      "vs",  "etc", "approx", "inc",  "ltd",  "co",  "corp", "jan",  "feb",  "mar",  "apr", "jun", "jul",
      "aug", "sep", "sept",   "oct",  "nov",  "dec", "mt",   "ft",   "gen",  "col",  "rep", "sen", "gov",
      "lt",  "sgt", "capt",   "cmdr", "adm",  "ave", "blvd", "ref",  "refs", "pp",   "ed",  "eds", "al",
      "cf",  "ca",  "ch",     "eq",   "eqs",  "sec", "dept", "univ", "assoc"};
  return k;
}

std::string lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

/// Clitics PTBLexer splits from the word before them ("does n't", "patient 's").
const std::vector<std::string> kClitics = {"n't", "'s", "'re", "'ve", "'ll", "'d", "'m"};

bool is_clitic(const std::string& w) { return std::find(kClitics.begin(), kClitics.end(), lower(w)) != kClitics.end(); }

/// True when `c` is one of `chars` (never for the terminating NUL).
bool one_of(char c, const char* chars) { return c != '\0' && std::strchr(chars, c) != nullptr; }

/// Replaces multi-byte typography with PTB's ASCII forms before splitting.
std::string normalise(const std::string& text) {
  static const std::vector<std::pair<std::string, std::string>> k = {
      {"\xE2\x80\x9C", " `` "},   // left double quotation mark
      {"\xE2\x80\x9D", " '' "},   // right double quotation mark
      {"\xE2\x80\x98", " ` "},    // left single quotation mark
      {"\xE2\x80\x99", "'"},      // right single quotation mark: an apostrophe inside words
      {"\xE2\x80\xA6", " ... "},  // horizontal ellipsis
      {"\xE2\x80\x94", " -- "},   // em dash
      {"\xE2\x80\x93", " -- "},   // en dash
      {"&amp;", "&"},
      {"\n", " "},
  };
  std::string s = text;
  for (const auto& [from, to] : k) {
    for (size_t at = s.find(from); at != std::string::npos; at = s.find(from, at + to.size()))
      s.replace(at, from.size(), to);
  }
  return s;
}

/// Splits one whitespace-free chunk into PTB tokens (before lower-casing).
void split_chunk(std::string w, std::vector<std::string>& out) {
  std::vector<std::string> tail;
  // Leading punctuation.
  for (;;) {
    if (w.empty()) break;
    const char c = w[0];
    if (one_of(c, "()[]{},;:?!$#")) {
      out.emplace_back(1, c);
      w.erase(0, 1);
    } else if (c == '"') {
      out.emplace_back("``");
      w.erase(0, 1);
    } else if (w.rfind("``", 0) == 0 || w.rfind("''", 0) == 0 || w.rfind("...", 0) == 0 || w.rfind("--", 0) == 0) {
      const size_t n = w.rfind("...", 0) == 0 ? 3 : 2;
      out.push_back(w.substr(0, n));
      w.erase(0, n);
    } else if (c == '`' ||
               (c == '\'' && w.size() > 1 && std::isalpha(static_cast<unsigned char>(w[1])) && !is_clitic(w))) {
      out.emplace_back("`");
      w.erase(0, 1);
    } else {
      break;
    }
  }
  // Trailing punctuation (collected in reverse).
  for (;;) {
    if (w.empty()) break;
    const char c = w.back();
    if (w.size() >= 3 && w.compare(w.size() - 3, 3, "...") == 0) {
      tail.emplace_back("...");
      w.resize(w.size() - 3);
    } else if (w.size() >= 2 && w.compare(w.size() - 2, 2, "?!") == 0) {
      tail.emplace_back("?!");
      w.resize(w.size() - 2);
    } else if (w.size() >= 2 && (w.compare(w.size() - 2, 2, "--") == 0 || w.compare(w.size() - 2, 2, "''") == 0)) {
      tail.push_back(w.substr(w.size() - 2));
      w.resize(w.size() - 2);
    } else if (one_of(c, "()[]{},;:?!%")) {
      tail.emplace_back(1, c);
      w.pop_back();
    } else if (c == '"') {
      tail.emplace_back("''");
      w.pop_back();
    } else if (c == '\'' && (w.size() == 1 || std::tolower(static_cast<unsigned char>(w[w.size() - 2])) != 's')) {
      tail.emplace_back("'");
      w.pop_back();
    } else if (c == '.') {
      const std::string stem = lower(w.substr(0, w.size() - 1));
      const bool internal_period = stem.find('.') != std::string::npos;  // e.g. u.s.
      const bool single_letter = stem.size() == 1 && std::isalpha(static_cast<unsigned char>(stem[0]));
      if (!stem.empty() && (abbreviations().count(stem) || internal_period || single_letter)) break;
      tail.emplace_back(".");
      w.pop_back();
    } else {
      break;
    }
  }
  if (!w.empty()) {
    // Clitics and "cannot".
    const std::string lw = lower(w);
    std::string clitic;
    for (const auto& cl : kClitics) {
      if (lw.size() > cl.size() && lw.compare(lw.size() - cl.size(), cl.size(), cl) == 0) {
        clitic = w.substr(w.size() - cl.size());
        w.resize(w.size() - cl.size());
        break;
      }
    }
    if (lower(w) == "cannot") {
      out.push_back(w.substr(0, 3));
      out.push_back(w.substr(3));
    } else if (!w.empty()) {
      out.push_back(w);
    }
    if (!clitic.empty()) out.push_back(clitic);
  }
  out.insert(out.end(), tail.rbegin(), tail.rend());
}

std::string escape(const std::string& t) {
  if (t == "(") return "-LRB-";
  if (t == ")") return "-RRB-";
  if (t == "[") return "-LSB-";
  if (t == "]") return "-RSB-";
  if (t == "{") return "-LCB-";
  if (t == "}") return "-RCB-";
  return t;
}

}  // namespace

std::string ptb_tokenize(const std::string& text) {
  static const std::set<std::string> kPunctuations = {"''", "'", "``", "`", "-LRB-", "-RRB-", "-LCB-", "-RCB-", ".",
                                                      "?",  "!", ",",  ":", "-",     "--",    "...",   ";"};
  const std::string s = normalise(text);
  std::vector<std::string> tokens;
  size_t i = 0;
  while (i < s.size()) {
    while (i < s.size() && std::isspace(static_cast<unsigned char>(s[i]))) ++i;
    size_t j = i;
    while (j < s.size() && !std::isspace(static_cast<unsigned char>(s[j]))) ++j;
    if (j > i) split_chunk(s.substr(i, j - i), tokens);
    i = j;
  }
  std::string out;
  for (const auto& t : tokens) {
    // -lowerCase applies after escaping, and pycocoevalcap compares the lower-cased tokens with
    // its list, whose bracket entries are upper-case: "-lrb-" and the like survive.
    const std::string lowered = lower(escape(t));
    if (kPunctuations.count(lowered)) continue;
    if (!out.empty()) out += ' ';
    out += lowered;
  }
  return out;
}

}  // namespace msmedcap::metrics
