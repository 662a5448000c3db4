#include "msmedcap/metrics/meteor.h"

#if MSMEDCAP_WITH_STEMMER
#include <libstemmer.h>
#else
struct sb_stemmer;  // never made: without libstemmer the stem module is refused (Meteor::Meteor)
#endif

#include <algorithm>
#include <array>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <unordered_set>

#include "msmedcap/core/check.h"
#include "msmedcap/core/components.h"
#include "msmedcap/data/unicode.h"
#include "msmedcap/metrics/wordnet.h"

namespace msmedcap::metrics {
namespace {

namespace uni = data::unicode;

// ------------------------------------------------------------------------------------------------
// Normaliser (Meteor's Normalizer.normalizeLine for English, keepPunctuation = true). Each rule
// that Meteor writes as a regular expression over three characters is applied as Java's
// replaceAll does: left to right, matches not overlapping.

bool is_alpha(char32_t c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == 0x160 || c == 0x17D || c == 0x161 || c == 0x17E ||
         c == 0x178 || (c >= 0xC0 && c <= 0xD6) || (c >= 0xD8 && c <= 0xF6) || (c >= 0xF8 && c <= 0x17E) ||
         (c >= 0x400 && c <= 0x4FF) || (c >= 0x500 && c <= 0x527) || (c >= 0xA640 && c <= 0xA66E) ||
         (c >= 0xA67E && c <= 0xA697) || (c >= 0x1D00 && c <= 0x1D7F);
}
bool is_digit(char32_t c) { return c >= '0' && c <= '9'; }
bool is_alnum(char32_t c) { return is_alpha(c) || is_digit(c); }
bool is_java_space(char32_t c) { return c == ' ' || c == '\t' || c == '\n' || c == 0x0B || c == '\f' || c == '\r'; }
bool is_white(char32_t c) {  // Meteor's r_white class: ASCII space and the Unicode spaces it lists
  return c == ' ' || c == 0xA0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200A) || c == 0x202F || c == 0x205F ||
         c == 0x3000;
}

/// Replaces every non-overlapping `a mid b` (a, b single characters passing the predicates) by
/// `a + replacement + b`.
template <class A, class B>
std::u32string replace_around(const std::u32string& s, A&& a, char32_t mid, B&& b, const std::u32string& replacement) {
  std::u32string out;
  size_t i = 0;
  while (i < s.size()) {
    if (i + 2 < s.size() && s[i + 1] == mid && a(s[i]) && b(s[i + 2])) {
      out += s[i];
      out += replacement;
      out += s[i + 2];
      i += 3;
    } else {
      out += s[i++];
    }
  }
  return out;
}

std::u32string replace_all(const std::u32string& s, const std::u32string& from, const std::u32string& to) {
  std::u32string out;
  size_t i = 0;
  while (i < s.size()) {
    if (s.compare(i, from.size(), from) == 0) {
      out += to;
      i += from.size();
    } else {
      out += s[i++];
    }
  }
  return out;
}

bool all_dots(const std::u32string& w) { return w.size() > 1 && w.find_first_not_of(U'.') == std::u32string::npos; }

std::u32string normalize_english(const std::u32string& line) {
  std::u32string s;
  // Wrap in spaces, separate every character that is not alphanumeric, space or one of . ' ` , - ‘ ’.
  s += U' ';
  for (char32_t c : line) {
    const bool keep = is_alnum(c) || is_java_space(c) || c == '.' || c == '\'' || c == '`' || c == ',' || c == '-' ||
                      c == 0x2018 || c == 0x2019;
    if (keep) {
      s += c;
    } else {
      s += U' ';
      s += c;
      s += U' ';
    }
  }
  s += U' ';
  // Runs of two or more dots become tokens of their own.
  {
    std::u32string t;
    for (size_t i = 0; i < s.size();) {
      size_t j = i;
      while (j < s.size() && s[j] == '.') ++j;
      if (j - i >= 2) {
        t += U' ';
        t.append(s, i, j - i);
        t += U' ';
        i = j;
      } else {
        t += s[i++];
      }
    }
    s = std::move(t);
  }
  auto not_digit = [](char32_t c) { return !is_digit(c); };
  // Commas, except within numbers.
  s = replace_around(s, not_digit, ',', not_digit, U" , ");
  s = replace_around(s, is_digit, ',', not_digit, U" , ");
  s = replace_around(s, not_digit, ',', is_digit, U" , ");
  // Quotes: ` ‘ ’ -> ', then “ ” and '' -> " (spaced).
  for (auto& c : s)
    if (c == '`' || c == 0x2018 || c == 0x2019) c = '\'';
  {
    std::u32string t;
    for (size_t i = 0; i < s.size();) {
      if (s[i] == 0x201C || s[i] == 0x201D) {
        t += U" \" ";
        i += 1;
      } else if (s[i] == '\'' && i + 1 < s.size() && s[i + 1] == '\'') {
        t += U" \" ";
        i += 2;
      } else {
        t += s[i++];
      }
    }
    s = std::move(t);
  }
  // Dashes: en dash and "--" -> "-"; a dash between word characters (or after a dot) is dropped.
  s = replace_all(s, U"\u2013", U"-");
  s = replace_all(s, U"--", U"-");
  s = replace_around(
      s, [](char32_t c) { return is_alnum(c) || c == '.'; }, '-', is_alnum, U" ");
  // English contractions split to the right.
  auto not_alpha = [](char32_t c) { return !is_alpha(c); };
  auto not_alnum = [](char32_t c) { return !is_alpha(c) && !is_digit(c); };
  s = replace_around(s, not_alpha, '\'', not_alpha, U" ' ");
  s = replace_around(s, not_alnum, '\'', is_alpha, U" ' ");
  s = replace_around(s, is_alpha, '\'', not_alpha, U" ' ");
  s = replace_around(s, is_alpha, '\'', is_alpha, U" '");
  s = replace_around(
      s, is_digit, '\'', [](char32_t c) { return c == 's'; }, U" '");
  // Words; a final dot is split off unless the word is dotted throughout (U.S. -> US) or the next
  // word starts with a lower-case letter.
  std::vector<std::u32string> words;
  {
    std::u32string w;
    for (char32_t c : s) {
      if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f') {
        if (!w.empty()) words.push_back(std::move(w));
        w.clear();
      } else {
        w += c;
      }
    }
    if (!w.empty()) words.push_back(std::move(w));
  }
  std::u32string rebuilt;
  for (size_t i = 0; i < words.size(); ++i) {
    const auto& w = words[i];
    if (w.size() > 1 && w.back() == '.' && !all_dots(w)) {
      const std::u32string pre = w.substr(0, w.size() - 1);
      const bool dotted = pre.find('.') != std::u32string::npos && std::any_of(pre.begin(), pre.end(), is_alpha);
      if (dotted) {
        for (char32_t c : w)
          if (c != '.') rebuilt += c;
      } else if (i + 1 < words.size() && words[i + 1][0] >= 'a' && words[i + 1][0] <= 'z') {
        rebuilt += w;
      } else {
        rebuilt += pre;
        rebuilt += U" .";
      }
    } else {
      rebuilt += w;
    }
    rebuilt += U' ';
  }
  // Collapse white space and trim (Java's trim drops everything up to U+0020).
  std::u32string out;
  bool pending_space = false;
  for (char32_t c : rebuilt) {
    if (is_white(c)) {
      pending_space = true;
      continue;
    }
    if (pending_space && !out.empty()) out += U' ';
    pending_space = false;
    out += c;
  }
  while (!out.empty() && out.back() <= 0x20) out.pop_back();
  size_t first = 0;
  while (first < out.size() && out[first] <= 0x20) ++first;
  return out.substr(first);
}

// ------------------------------------------------------------------------------------------------
// Function words (Meteor's delta weighting). Written here: determiners, pronouns, prepositions,
// conjunctions, auxiliaries, particles, clitics and punctuation tokens.

const std::unordered_set<std::string>& builtin_function_words() {
  static const std::unordered_set<std::string> words = {
      "a",         "an",         "the",        "this",     "that",       "these",    "those",  "each",
      "every",     "either",     "neither",    "some",     "any",        "no",       "all",    "both",
      "half",      "several",    "many",       "much",     "more",       "most",     "few",    "fewer",
      "less",      "least",      "other",      "another",  "such",       "what",     "which",  "whatever",
      "whichever", "own",        "same",       "i",        "me",         "my",       "mine",   "myself",
      "you",       "your",       "yours",      "yourself", "yourselves", "he",       "him",    "his",
      "himself",   "she",        "her",        "hers",     "herself",    "it",       "its",    "itself",
      "we",        "us",         "our",        "ours",     "ourselves",  "they",     "them",   "their",
      "theirs",    "themselves", "one",        "ones",     "oneself",    "who",      "whom",   "whose",
      "whoever",   "something",  "anything",   "nothing",  "everything", "someone",  "anyone", "everyone",
      "about",     "above",      "across",     "after",    "against",    "along",    "amid",   "among",
      "amongst",   "around",     "as",         "at",       "before",     "behind",   "below",  "beneath",
      "beside",    "besides",    "between",    "beyond",   "by",         "despite",  "down",   "during",
      "except",    "for",        "from",       "in",       "inside",     "into",     "like",   "near",
      "of",        "off",        "on",         "onto",     "out",        "outside",  "over",   "past",
      "per",       "since",      "than",       "through",  "throughout", "till",     "to",     "toward",
      "towards",   "under",      "underneath", "unlike",   "until",      "up",       "upon",   "via",
      "with",      "within",     "without",    "and",      "but",        "or",       "nor",    "so",
      "yet",       "because",    "although",   "though",   "while",      "whereas",  "if",     "unless",
      "whether",   "once",       "where",      "when",     "whenever",   "wherever", "how",    "why",
      "then",      "am",         "is",         "are",      "was",        "were",     "be",     "been",
      "being",     "have",       "has",        "had",      "having",     "do",       "does",   "did",
      "doing",     "will",       "would",      "shall",    "should",     "can",      "could",  "may",
      "might",     "must",       "ought",      "not",      "n't",        "'s",       "'ve",    "'re",
      "'ll",       "'d",         "'m",         "'",        "there",      "here",     "very",   "just",
      "only",      "too",        "also",       "even",     "ever",       "still",    "again",  "already",
      "however",   "thus",       "therefore",  "hence",    "etc",        ".",        ",",      ";",
      ":",         "!",          "?",          "\"",       "`",          "(",        ")",      "[",
      "]",         "{",          "}",          "-",        "--",         "...",      "/",      "\\",
      "&",         "%",          "$",          "#",        "@",          "*",        "+",      "=",
      "<",         ">",          "|",          "~",        "^",          "_",        "-lrb-",  "-rrb-",
      "-lsb-",     "-rsb-",      "-lcb-",      "-rcb-"};
  return words;
}

std::unordered_set<std::string> read_function_words(const std::string& path) {
  std::ifstream in(path);
  MSMEDCAP_CHECK(in.good(), path, ": cannot open (function word list)");
  std::unordered_set<std::string> words;
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    words.insert(line);
  }
  MSMEDCAP_CHECK(!words.empty(), path, ": empty function word list");
  return words;
}

// ------------------------------------------------------------------------------------------------
// Alignment (Meteor's Aligner with PARTIAL_COMPARE_TOTAL). Line 1 is the hypothesis, line 2 the
// reference; candidate matches are listed per reference position.

enum Module { kExact = 0, kStem = 1, kSynonym = 2, kModules = 3 };
constexpr std::array<double, kModules> kSearchWeights = {1.0, 0.5, 0.5};  // MeteorScorer's aligner weights
constexpr std::array<double, kModules> kScoreWeights = {1.0, 0.6, 0.8};   // "rank" task, English
constexpr double kAlpha = 0.85, kBeta = 0.20, kGamma = 0.60, kDelta = 0.75;
constexpr size_t kBeam = 40;

struct Match {
  int ref = 0;  // start in line 2
  int hyp = 0;  // start in line 1
  int module = kExact;
};

struct Path {
  std::vector<std::optional<Match>> matches;  // by reference position
  std::vector<char> used_hyp, used_ref;
  int weighted = 0;  // matches1 + matches2 as Meteor's int fields accumulate them
  int chunks = 0, idx = 0, last_end = -1, distance = 0;
};

/// Meteor adds `length * weight` to an int field: Java truncates the sum.
void add_weighted(int& field, double weight) { field = static_cast<int>(static_cast<double>(field) + weight); }

struct Counts {
  std::array<double, kModules> hyp_content{}, ref_content{}, hyp_function{}, ref_function{};
  double hyp_len = 0, ref_len = 0, hyp_fw = 0, ref_fw = 0;
  double chunks = 0, hyp_matches = 0, ref_matches = 0;
  double score = 0;

  double hyp_total() const {
    double t = 0;
    for (int m = 0; m < kModules; ++m) t += hyp_content[m] + hyp_function[m];
    return t;
  }
  double ref_total() const {
    double t = 0;
    for (int m = 0; m < kModules; ++m) t += ref_content[m] + ref_function[m];
    return t;
  }
  bool perfect() const { return hyp_total() == hyp_len && ref_total() == ref_len && chunks == 1; }

  void add(const Counts& o) {
    for (int m = 0; m < kModules; ++m) {
      hyp_content[m] += o.hyp_content[m];
      ref_content[m] += o.ref_content[m];
      hyp_function[m] += o.hyp_function[m];
      ref_function[m] += o.ref_function[m];
    }
    hyp_len += o.hyp_len;
    ref_len += o.ref_len;
    hyp_fw += o.hyp_fw;
    ref_fw += o.ref_fw;
    if (!o.perfect()) chunks += o.chunks;
    hyp_matches += o.hyp_matches;
    ref_matches += o.ref_matches;
  }

  /// MeteorScorer.computeMetrics.
  void compute() {
    const double hyp_wlen = kDelta * (hyp_len - hyp_fw) + (1 - kDelta) * hyp_fw;
    const double ref_wlen = kDelta * (ref_len - ref_fw) + (1 - kDelta) * ref_fw;
    double hyp_w = 0, ref_w = 0;
    for (int m = 0; m < kModules; ++m) {
      hyp_w += hyp_content[m] * kScoreWeights[m] * kDelta + hyp_function[m] * kScoreWeights[m] * (1 - kDelta);
      ref_w += ref_content[m] * kScoreWeights[m] * kDelta + ref_function[m] * kScoreWeights[m] * (1 - kDelta);
    }
    const double precision = hyp_w / hyp_wlen, recall = ref_w / ref_wlen;
    const double fmean = 1.0 / ((1 - kAlpha) / precision + kAlpha / recall);
    const double frag = perfect() ? 0.0 : chunks / ((hyp_matches + ref_matches) / 2);
    const double s = fmean * (1 - kGamma * std::pow(frag, kBeta));
    score = std::isnan(s) ? 0.0 : std::max(s, 0.0);
  }
};

/// A normalised sentence with what the matchers compare, computed once per sentence.
struct Sentence {
  std::vector<std::string> words, stems;
  std::vector<std::unordered_set<int64_t>> synsets;
};

#if MSMEDCAP_WITH_STEMMER
using Stemmer = std::unique_ptr<sb_stemmer, decltype(&sb_stemmer_delete)>;
#endif

}  // namespace

struct Meteor::Impl {
  std::unordered_set<std::string> function_words;
  std::optional<WordNetSynonyms> synonyms;
  bool stem = true;

  Sentence prepare(const std::string& text, sb_stemmer* stemmer) const;
  Counts align(const Sentence& hyp_sentence, const Sentence& ref_sentence) const;
};

Sentence Meteor::Impl::prepare(const std::string& text, sb_stemmer* stemmer) const {
  Sentence s;
  s.words = split_whitespace(Meteor::normalize(text));
  for (const auto& w : s.words) {
#if MSMEDCAP_WITH_STEMMER
    if (stemmer) {
      const sb_symbol* out =
          sb_stemmer_stem(stemmer, reinterpret_cast<const sb_symbol*>(w.data()), static_cast<int>(w.size()));
      s.stems.emplace_back(reinterpret_cast<const char*>(out), sb_stemmer_length(stemmer));
    }
#endif
    if (synonyms) s.synsets.push_back(synonyms->synsets(w));
  }
  return s;
}

Counts Meteor::Impl::align(const Sentence& hyp_sentence, const Sentence& ref_sentence) const {
  const auto& hyp = hyp_sentence.words;
  const auto& ref = ref_sentence.words;
  const int n1 = static_cast<int>(hyp.size()), n2 = static_cast<int>(ref.size());
  std::vector<std::vector<Match>> candidates(n2);
  std::vector<int> cover1(n1, 0), cover2(n2, 0);
  auto add = [&](int i, int j, int module) {
    candidates[j].push_back({j, i, module});
    ++cover1[i];
    ++cover2[j];
  };
  for (int j = 0; j < n2; ++j)
    for (int i = 0; i < n1; ++i)
      if (hyp[i] == ref[j]) add(i, j, kExact);
  // Identical sentences need exact matches only.
  if (hyp != ref) {
    if (stem) {
      const auto& s1 = hyp_sentence.stems;
      const auto& s2 = ref_sentence.stems;
      for (int j = 0; j < n2; ++j)
        for (int i = 0; i < n1; ++i)
          if (s1[i] == s2[j] && hyp[i] != ref[j]) add(i, j, kStem);
    }
    if (synonyms) {
      const auto& y1 = hyp_sentence.synsets;
      const auto& y2 = ref_sentence.synsets;
      for (int j = 0; j < n2; ++j)
        for (int i = 0; i < n1; ++i) {
          if (hyp[i] == ref[j]) continue;
          const bool shared = std::any_of(y1[i].begin(), y1[i].end(), [&](int64_t id) { return y2[j].count(id) > 0; });
          if (shared) add(i, j, kSynonym);
        }
    }
  }

  Path start;
  start.matches.assign(n2, std::nullopt);
  start.used_hyp.assign(n1, 0);
  start.used_ref.assign(n2, 0);
  // One-to-one matches whose words have no other candidate are fixed.
  for (int j = 0; j < n2; ++j) {
    if (candidates[j].size() != 1) continue;
    const Match& m = candidates[j][0];
    if (cover2[j] != 1 || cover1[m.hyp] != 1) continue;
    start.matches[j] = m;
    start.used_ref[j] = 1;
    start.used_hyp[m.hyp] = 1;
  }

  auto before = [](const Path& x, const Path& y) {
    if (x.weighted != y.weighted) return x.weighted > y.weighted;
    if (x.chunks != y.chunks) return x.chunks < y.chunks;
    return x.distance < y.distance;
  };
  auto take = [&](Path& p, const Match& m) {
    add_weighted(p.weighted, kSearchWeights[m.module]);
    add_weighted(p.weighted, kSearchWeights[m.module]);
    if (p.last_end != -1 && m.hyp != p.last_end) ++p.chunks;
    p.idx = m.ref + 1;
    p.last_end = m.hyp + 1;
  };
  std::vector<Path> next{start};
  for (int current = 0; current <= n2; ++current) {
    std::vector<Path> paths = std::move(next);
    next.clear();
    std::stable_sort(paths.begin(), paths.end(), before);
    for (size_t rank = 0; rank < kBeam && rank < paths.size(); ++rank) {
      Path& path = paths[rank];
      if (current == n2) {
        if (path.last_end != -1) ++path.chunks;
        next.push_back(std::move(path));
        continue;
      }
      if (path.used_ref[current]) {
        if (current < path.idx) {
          next.push_back(std::move(path));
        } else if (path.matches[path.idx]) {
          const Match m = *path.matches[path.idx];
          take(path, m);
          path.distance += std::abs(m.ref - m.hyp);
          next.push_back(std::move(path));
        }
        continue;
      }
      for (const Match& m : candidates[current]) {
        if (path.used_ref[m.ref] || path.used_hyp[m.hyp]) continue;
        Path branch = path;
        branch.used_ref[m.ref] = 1;
        branch.used_hyp[m.hyp] = 1;
        branch.matches[current] = m;
        take(branch, m);
        // Meteor adds this distance to the path it branched from (the one that skips).
        path.distance += std::abs(m.ref - m.hyp);
        next.push_back(std::move(branch));
      }
      if (path.last_end != -1) {
        ++path.chunks;
        path.last_end = -1;
      }
      ++path.idx;
      next.push_back(std::move(path));
    }
    if (next.empty()) next.push_back(paths.front());
  }
  std::stable_sort(next.begin(), next.end(), before);
  const Path& best = next.front();

  Counts c;
  c.hyp_len = n1;
  c.ref_len = n2;
  std::vector<char> fw1(n1), fw2(n2);
  for (int i = 0; i < n1; ++i) c.hyp_fw += fw1[i] = function_words.count(hyp[i]) > 0;
  for (int j = 0; j < n2; ++j) c.ref_fw += fw2[j] = function_words.count(ref[j]) > 0;
  int last_end = -1;
  double chunks = 0;
  for (int j = 0; j < n2; ++j) {
    const auto& m = best.matches[j];
    if (!m) {
      if (last_end != -1) ++chunks;
      last_end = -1;
      continue;
    }
    (fw1[m->hyp] ? c.hyp_function : c.hyp_content)[m->module] += 1;
    (fw2[m->ref] ? c.ref_function : c.ref_content)[m->module] += 1;
    c.hyp_matches += 1;
    c.ref_matches += 1;
    if (last_end != -1 && m->hyp != last_end) ++chunks;
    last_end = m->hyp + 1;
  }
  if (last_end != -1) ++chunks;
  c.chunks = chunks;
  c.compute();
  return c;
}

Meteor::Meteor(const MeteorOptions& options) : impl_(std::make_unique<Impl>()) {
  impl_->function_words =
      options.function_words_file.empty() ? builtin_function_words() : read_function_words(options.function_words_file);
  impl_->stem = options.stem;
  if (options.stem && !core::built_with(core::Component::kStemmer))
    core::fail_built_without(core::Component::kStemmer, "METEOR's stem module");
  if (!options.wordnet_dir.empty()) {
    const bool is_default = options.wordnet_dir == MeteorOptions::kDefaultWordNetDir;
    if (!is_default || std::filesystem::exists(options.wordnet_dir + "/index.noun"))
      impl_->synonyms.emplace(options.wordnet_dir);
  }
}

Meteor::~Meteor() = default;

std::string Meteor::modules() const {
  std::string s = "exact";
  if (impl_->stem) s += " stem";
  if (impl_->synonyms) s += " synonym";
  return s;
}

std::string Meteor::normalize(const std::string& line) {
  return uni::encode_utf8(uni::to_lower(normalize_english(uni::decode_utf8(line))));
}

Score Meteor::score(const std::vector<Item>& items) const {
#if MSMEDCAP_WITH_STEMMER
  Stemmer stemmer(impl_->stem ? sb_stemmer_new("english", "UTF_8") : nullptr, &sb_stemmer_delete);
  MSMEDCAP_CHECK(!impl_->stem || stemmer, "libstemmer: no English stemmer");
#else
  std::unique_ptr<sb_stemmer, void (*)(sb_stemmer*)> stemmer(nullptr, [](sb_stemmer*) {});
#endif
  Score out;
  Counts total;
  for (const auto& item : items) {
    const Sentence hyp = impl_->prepare(item.hyp, stemmer.get());
    Counts best;
    best.score = -1;
    for (const auto& r : item.refs) {
      Counts c = impl_->align(hyp, impl_->prepare(r, stemmer.get()));
      if (c.score > best.score) best = c;
    }
    out.per_item.push_back(std::max(best.score, 0.0));
    total.add(best);
  }
  total.compute();
  out.corpus = items.empty() ? 0.0 : total.score;
  return out;
}

}  // namespace msmedcap::metrics
