#pragma once
/// `msmedcap evaluate`: predictions and references from JSONL files, PTB-tokenised, scored as
/// pycocoevalcap's COCOEvalCap does (docs/DATA.md, "Captioning metrics").

#include <map>
#include <string>
#include <vector>

namespace msmedcap::metrics {

/// PRED lines `{"id": ..., "caption": "..."}` (string or number ids). Errors name file:line
/// (malformed JSON, missing field, duplicate id).
std::map<std::string, std::string> read_predictions(const std::string& path);

/// REF lines `{"id": ..., "captions": ["...", ...]}` or `{"id": ..., "caption": "..."}`; several
/// lines with one id add references to it.
std::map<std::string, std::vector<std::string>> read_references(const std::string& path);

struct Evaluation {
  /// Bleu_1..Bleu_4, METEOR (when a scorer is given), ROUGE_L, CIDEr (pycocoevalcap's names).
  std::map<std::string, double> corpus;
  std::vector<std::string> ids;                               // in id order
  std::map<std::string, std::vector<double>> per_item;        // metric -> score per id
};

class Meteor;

/// Scores `predictions` against `references`, METEOR with `meteor` when not null. Ids present on
/// one side only are an error that names (the first of) them.
Evaluation evaluate(const std::map<std::string, std::string>& predictions,
                    const std::map<std::string, std::vector<std::string>>& references,
                    const Meteor* meteor = nullptr);

/// Each reference line's `field` (e.g. the synthetic benchmark's "size" or "finding") as text,
/// "(none)" where it is absent, null or empty. An id whose lines disagree is an error.
std::map<std::string, std::string> read_reference_field(const std::string& path, const std::string& field);

/// evaluate() on each group of ids (`group_of`: id -> group; ids without one form "(none)"),
/// each group scored on its own (CIDEr's document frequencies come from the group's references,
/// as scoring that subset alone would give).
std::map<std::string, Evaluation> evaluate_groups(const std::map<std::string, std::string>& predictions,
                                                  const std::map<std::string, std::vector<std::string>>& references,
                                                  const std::map<std::string, std::string>& group_of,
                                                  const Meteor* meteor = nullptr);

}  // namespace msmedcap::metrics
