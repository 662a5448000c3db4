#pragma once
/// `msmedcap evaluate`: predictions and references from JSONL files, PTB-tokenised, scored as
/// pycocoevalcap's COCOEvalCap does (docs/DATA.md, "Captioning metrics").

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "msmedcap/config/config_io.h"

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
  std::vector<std::string> ids;                         // in id order
  std::map<std::string, std::vector<double>> per_item;  // metric -> score per id
};

class Meteor;

/// Scores `predictions` against `references`, METEOR with `meteor` when not null. Ids present on
/// one side only are an error that names (the first of) them.
Evaluation evaluate(const std::map<std::string, std::string>& predictions,
                    const std::map<std::string, std::vector<std::string>>& references, const Meteor* meteor = nullptr);

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

/// pycocoevalcap's metric names, in the order tables show them: Bleu_1..Bleu_4, METEOR, ROUGE_L,
/// CIDEr. The one list `evaluate`, `report` and the training's validation captions share.
const std::vector<std::string>& metric_names();

/// Scores of a set of items: metric -> value (null: not computed, as METEOR under --no-meteor)
/// and the item count.
struct Scores {
  std::map<std::string, std::optional<double>> values;
  int64_t n = 0;
};

/// What `evaluate --json` writes and `report --scores` reads: the corpus scores and, for each
/// `--by` field, each group's scores. JSON: {"Bleu_1": 0.41, ..., "n": 580, "groups": {"size":
/// {"small": {"Bleu_1": ..., "n": 190}, ...}}}.
struct EvaluationSummary {
  Scores corpus;
  std::map<std::string, std::map<std::string, Scores>> groups;  ///< field -> group -> scores
};

/// Every metric_names() entry of `e` (null where `e` lacks it), and its item count.
Scores scores_of(const Evaluation& e);

config::Json to_json(const Scores& s);
config::Json to_json(const EvaluationSummary& s);
/// The inverse of to_json. Any key besides "n" and "groups" is a metric, whose value must be a
/// number or null; errors name `where` and the key. "n" may be absent (files from before it).
EvaluationSummary evaluation_summary_from_json(const config::Json& j, const std::string& where);

}  // namespace msmedcap::metrics
