#pragma once
/// METEOR 1.5 as pycocoevalcap runs it (`meteor-1.5.jar - - -stdio -l en -norm`,
/// docs/DATA.md, "METEOR"), reimplemented without Java:
///   - Meteor's -norm normaliser on the PTB-tokenised text, then lower-casing;
///   - matching modules exact, stem (Snowball English through libstemmer) and synonym (WordNet 3.0
///     synsets plus WordNet's morphology, from Debian's wordnet-base); the paraphrase module has no
///     data here and is off, which can only lower scores where paraphrases would have matched;
///   - Meteor's beam-40 alignment search with its tie-breaks (weighted matches with integer
///     truncation, then fewer chunks, then the distance sum), one-to-one matches fixed first;
///   - the "rank" parameters for English (alpha 0.85, beta 0.2, gamma 0.6, delta 0.75; module
///     weights 1.0 / 0.6 / 0.8), the best-scoring reference per item, and a corpus score from
///     summed sufficient statistics (chunks of perfect segments not added).
/// Function words: the built-in English list, or Meteor's `function/english.words` when given.
/// Not reproduced: the paraphrase table and Meteor's non-breaking-prefix list (its entries are
/// capitalised, so they rarely apply to PTB's lower-cased output).

#include <memory>
#include <string>
#include <vector>

#include "msmedcap/metrics/scorer.h"

namespace msmedcap::metrics {

struct MeteorOptions {
  /// Folder with WordNet's index.{noun,verb,adj,adv} and *.exc files; empty turns the synonym
  /// module off. The default is Debian's wordnet-base; when that default is absent the module is
  /// off (see Meteor::modules()), a folder given explicitly must exist.
  std::string wordnet_dir = kDefaultWordNetDir;
  /// One word per line (Meteor's format); empty means the built-in list.
  std::string function_words_file;
  bool stem = true;

  static constexpr const char* kDefaultWordNetDir = "/usr/share/wordnet";
};

class Meteor {
 public:
  explicit Meteor(const MeteorOptions& options = {});
  ~Meteor();
  Meteor(const Meteor&) = delete;
  Meteor& operator=(const Meteor&) = delete;

  /// Corpus METEOR and the per-item scores, for PTB-tokenised items.
  Score score(const std::vector<Item>& items) const;

  /// The active modules, e.g. "exact stem synonym".
  std::string modules() const;

  /// Meteor's English -norm normaliser followed by lower-casing (MeteorScorer does both).
  static std::string normalize(const std::string& line);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace msmedcap::metrics
