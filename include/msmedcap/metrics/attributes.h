#pragma once
/// Attribute metrics (docs/DATA.md, "Attribute metrics"): labelled attributes (modality, finding,
/// side, ...) read out of captions with a rule file of keywords, synonyms and negation cues, then
/// compared between each generated caption and its reference: accuracy and macro-F1 per
/// attribute, the clinical-efficacy style of report-generation papers. A rule reader sees words,
/// not meaning; it is as good as its rule file, which a test checks against a dataset's own labels.

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "msmedcap/metrics/evaluate.h"

namespace msmedcap::metrics {

/// One attribute's rules. A caption takes the value whose keyword occurs first (a keyword is a
/// phrase of one or more words; a caption word also matches a keyword word with "s" or "es" added),
/// skipping matches a negation cue precedes within the window; with no match, the first
/// `implied` rule whose conditions hold (on attributes read before this one), else `absent`.
struct AttributeRule {
  std::string name;
  std::vector<std::pair<std::string, std::vector<std::vector<std::string>>>> values;  ///< value -> keywords (words)
  std::string absent = "none";
  /// The attribute this one describes: where that one is absent, this one is too (a size
  /// without a finding is not read).
  std::string requires_attribute;
  struct Implied {
    std::map<std::string, std::string> when;  ///< attribute -> value
    std::string value;
  };
  std::vector<Implied> implied;
};

struct AttributeRules {
  std::vector<AttributeRule> attributes;  ///< in the file's order (implied rules look back)
  std::vector<std::vector<std::string>> negation_cues;
  int64_t negation_window = 3;  ///< words a cue negates after it, at most
  /// Words that end a cue's scope early ("no mass, but a nodule").
  std::vector<std::string> negation_terminators;
};

/// Reads a rule file: {"negation": {"cues": [...], "window": 3, "terminators": [...]}, "attributes": {NAME: {"values":
/// {VALUE: [KEYWORD, ...]}, "absent": "none", "requires": NAME, "implied": [{"when": {NAME:
/// VALUE}, "value": VALUE}]}}}. Errors name the file and the key (an unknown key included).
AttributeRules read_attribute_rules(const std::string& path);

/// Each attribute's value in `caption` (attribute -> value, every attribute present).
std::map<std::string, std::string> read_attributes(const AttributeRules& rules, const std::string& caption);

/// Accuracy and macro-F1 (over the values either side uses) of each attribute over `ids`:
/// the prediction's attributes against the first reference caption's. Keys "<attribute>_acc"
/// and "<attribute>_f1", added to `out.values`; `out.n` is the number of ids.
void score_attributes(const AttributeRules& rules, const std::map<std::string, std::string>& predictions,
                      const std::map<std::string, std::vector<std::string>>& references,
                      const std::vector<std::string>& ids, Scores& out);

/// Whether each of `ids`' predictions reads `attribute` as its first reference does.
std::vector<bool> attribute_correct(const AttributeRules& rules, const std::string& attribute,
                                    const std::map<std::string, std::string>& predictions,
                                    const std::map<std::string, std::vector<std::string>>& references,
                                    const std::vector<std::string>& ids);

/// A paired comparison of two systems on the same items: the difference of their accuracies
/// (b - a) and its percentile bootstrap 95% interval, resampling items (pairs kept together)
/// `samples` times with a generator seeded by `seed` (the same on every platform).
struct PairedDifference {
  double a = 0, b = 0, difference = 0, low = 0, high = 0;
  int64_t n = 0;
};
PairedDifference paired_bootstrap(const std::vector<bool>& a, const std::vector<bool>& b, int64_t samples = 10000,
                                  uint64_t seed = 0);

/// The score names score_attributes writes, in the rule file's order.
std::vector<std::string> attribute_metric_names(const AttributeRules& rules);

}  // namespace msmedcap::metrics
