#pragma once
/// WordNet 3.0 synonym sets as METEOR's synonym module uses them: two different words match when
/// they share a synset, each word taken with the synsets of its base form (WordNet's exception
/// lists, else its detachment rules, first rule whose result is a WordNet lemma).

#include <cstdint>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

namespace msmedcap::metrics {

class WordNetSynonyms {
 public:
  /// Reads index.{noun,verb,adj,adv} and {noun,verb,adj,adv}.exc from `dir`; a missing or
  /// malformed file is an error naming it.
  explicit WordNetSynonyms(const std::string& dir);

  /// The synset ids of `word` and of its base forms (ids are unique across parts of speech).
  std::unordered_set<int64_t> synsets(const std::string& word) const;

  size_t lemma_count() const { return lemma_synsets_.size(); }

 private:
  const std::vector<int64_t>* lemma(const std::string& word) const;
  /// METEOR's reading of WordNet's morphology: the first detachment rule whose result is a lemma.
  std::string base_by_rules(const std::string& word) const;

  std::unordered_map<std::string, std::vector<int64_t>> lemma_synsets_;
  std::unordered_map<std::string, std::vector<std::string>> exception_bases_;
};

}  // namespace msmedcap::metrics
