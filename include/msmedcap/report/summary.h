#pragma once
/// Experiment summaries for `msmedcap plot` and `msmedcap report`: curves from a run's
/// metrics.jsonl, and markdown tables of `msmedcap evaluate --json` files, aggregated over
/// seeds (mean ± sample standard deviation). Torch-free.

#include <cstdint>
#include <string>
#include <vector>

#include "msmedcap/config/config_io.h"
#include "msmedcap/metrics/evaluate.h"
#include "msmedcap/report/plot.h"

namespace msmedcap::report {

/// `key` over steps from RUN_DIR/metrics.jsonl (or that file itself): the training lines' values,
/// or with `validation` the validation lines' ("val": {...}). Lines without the key are skipped;
/// a malformed line is an error naming file and line.
Series metrics_series(const std::string& run_or_file, const std::string& key, bool validation, const std::string& name);

/// Evaluations of one system (one per seed).
struct ScoreSet {
  std::string name;
  std::vector<metrics::EvaluationSummary> runs;  ///< `evaluate --json` files
  std::vector<std::string> files;                ///< where they came from (for errors)
};

/// Reads NAME=FILE arguments into score sets, in first-seen order of NAME; several files with
/// one name are seeds of that system.
std::vector<ScoreSet> read_score_sets(const std::vector<std::string>& name_eq_file);

struct Stat {
  double mean = 0, sd = 0;  ///< sd: sample standard deviation (0 for one value)
  int64_t n = 0;
};
Stat stat_of(const std::vector<double>& values);

/// "0.2345" for one value, "0.2345 ± 0.0123" for several.
std::string format_stat(const Stat& s, int decimals = 4);

/// Markdown: one row per system, one column per metric (and "seeds" when any has several).
std::string scores_table(const std::vector<ScoreSet>& sets, const std::vector<std::string>& metrics);

/// Markdown: for `metric`, one row per system and one column per group of `field`
/// (`evaluate --by FIELD` output); empty when no set has that field.
std::string group_table(const std::vector<ScoreSet>& sets, const std::string& field, const std::string& metric);

/// The group fields present in any of the sets' evaluations, sorted.
std::vector<std::string> group_fields(const std::vector<ScoreSet>& sets);

/// A markdown table of where the Q-Formers looked: for each branch of the caption records in
/// `records` (caption --attention-on-finding) that carry a measure, the studies, the mean share of
/// attention on the finding, the finding's mean share of the grid (attention spread evenly would
/// put that much on it) and their ratio. Errors name the file and line; no measure: "".
std::string attention_on_finding_table(const std::string& records);

}  // namespace msmedcap::report
