#include "msmedcap/metrics/wordnet.h"

#include <array>
#include <fstream>
#include <sstream>

#include "msmedcap/core/check.h"

namespace msmedcap::metrics {
namespace {

constexpr std::array<const char*, 4> kParts = {"noun", "verb", "adj", "adv"};

/// WordNet's detachment rules (suffix -> ending) for nouns, verbs and adjectives, in the order
/// METEOR tries them.
struct Rule {
  const char* suffix;
  const char* ending;
};
constexpr std::array<Rule, 20> kRules = {{
    {"s", ""},      {"ses", "s"},   {"xes", "x"},   {"zes", "z"},
    {"ches", "ch"}, {"shes", "sh"}, {"men", "man"}, {"ies", "y"},  // nouns
    {"s", ""},      {"ies", "y"},   {"es", "e"},    {"es", ""},
    {"ed", "e"},    {"ed", ""},     {"ing", "e"},   {"ing", ""},   // verbs
    {"er", ""},     {"est", ""},    {"er", "e"},    {"est", "e"},  // adjectives
}};

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

}  // namespace

WordNetSynonyms::WordNetSynonyms(const std::string& dir) {
  for (size_t part = 0; part < kParts.size(); ++part) {
    const std::string path = dir + "/index." + kParts[part];
    std::ifstream in(path);
    MSMEDCAP_CHECK(in.good(), path, ": cannot open (WordNet index; install wordnet-base)");
    std::string line;
    for (int64_t n = 1; std::getline(in, line); ++n) {
      if (line.empty() || line[0] == ' ') continue;  // licence header
      // lemma pos synset_cnt p_cnt [ptr_symbol]*p_cnt sense_cnt tagsense_cnt synset_offset*synset_cnt
      std::istringstream fields(line);
      std::string lemma, pos, symbol;
      int64_t synset_cnt = -1, p_cnt = -1, sense_cnt = 0, tagsense_cnt = 0;
      fields >> lemma >> pos >> synset_cnt >> p_cnt;
      for (int64_t i = 0; i < p_cnt && fields; ++i) fields >> symbol;
      fields >> sense_cnt >> tagsense_cnt;
      MSMEDCAP_CHECK(fields && synset_cnt >= 0 && p_cnt >= 0, path, ":", n, ": malformed WordNet index line");
      auto& ids = lemma_synsets_[lemma];
      for (int64_t i = 0; i < synset_cnt; ++i) {
        int64_t offset = -1;
        fields >> offset;
        MSMEDCAP_CHECK(fields && offset >= 0, path, ":", n, ": malformed synset offset");
        ids.push_back(offset * 4 + static_cast<int64_t>(part));
      }
    }
    const std::string exc = dir + "/" + kParts[part] + ".exc";
    std::ifstream ein(exc);
    MSMEDCAP_CHECK(ein.good(), exc, ": cannot open (WordNet exception list)");
    while (std::getline(ein, line)) {
      std::istringstream fields(line);
      std::string form, base;
      if (!(fields >> form)) continue;
      while (fields >> base) exception_bases_[form].push_back(base);
    }
  }
}

const std::vector<int64_t>* WordNetSynonyms::lemma(const std::string& word) const {
  const auto it = lemma_synsets_.find(word);
  return it == lemma_synsets_.end() ? nullptr : &it->second;
}

std::string WordNetSynonyms::base_by_rules(const std::string& word) const {
  if (ends_with(word, "ss") || word.size() <= 2) return word;
  for (const Rule& rule : kRules) {
    if (!ends_with(word, rule.suffix)) continue;
    std::string base = word.substr(0, word.size() - std::char_traits<char>::length(rule.suffix)) + rule.ending;
    if (lemma(base)) return base;
  }
  return "";
}

std::unordered_set<int64_t> WordNetSynonyms::synsets(const std::string& word) const {
  std::unordered_set<int64_t> out;
  auto add = [&](const std::string& w) {
    if (const auto* ids = lemma(w)) out.insert(ids->begin(), ids->end());
  };
  add(word);
  const auto exc = exception_bases_.find(word);
  if (exc != exception_bases_.end()) {
    for (const auto& base : exc->second) add(base);
  } else {
    add(base_by_rules(word));
  }
  return out;
}

}  // namespace msmedcap::metrics
