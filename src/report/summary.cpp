#include "msmedcap/report/summary.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>

#include <fmt/format.h>

#include "msmedcap/core/check.h"

namespace msmedcap::report {

Series metrics_series(const std::string& run_or_file, const std::string& key, bool validation,
                      const std::string& name) {
  const std::string path = std::filesystem::is_directory(run_or_file) ? run_or_file + "/metrics.jsonl" : run_or_file;
  std::ifstream in(path);
  MSMEDCAP_CHECK(in.good(), path, ": cannot open the metrics log");
  Series s;
  s.name = name;
  s.markers = validation;
  std::string line;
  for (int64_t n = 1; std::getline(in, line); ++n) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    const auto j = config::Json::parse(line, nullptr, false);
    MSMEDCAP_CHECK(!j.is_discarded() && j.is_object() && j.contains("step") && j["step"].is_number(), path, ":", n,
                   ": not a metrics line (a JSON object with \"step\")");
    const bool is_val = j.contains("val");
    if (is_val != validation) continue;
    const auto& values = is_val ? j["val"] : j;
    if (!values.is_object() || !values.contains(key) || !values[key].is_number()) continue;
    s.x.push_back(j["step"].get<double>());
    s.y.push_back(values[key].get<double>());
  }
  return s;
}

std::vector<ScoreSet> read_score_sets(const std::vector<std::string>& name_eq_file) {
  std::vector<ScoreSet> sets;
  for (const auto& arg : name_eq_file) {
    const auto eq = arg.find('=');
    MSMEDCAP_CHECK(eq != std::string::npos && eq > 0 && eq + 1 < arg.size(), "--scores ", arg,
                   ": expected NAME=EVAL.json");
    const std::string name = arg.substr(0, eq), file = arg.substr(eq + 1);
    auto summary = metrics::evaluation_summary_from_json(config::read_json_file(file), file);
    auto it = std::find_if(sets.begin(), sets.end(), [&](const ScoreSet& s) { return s.name == name; });
    if (it == sets.end()) {
      sets.push_back(ScoreSet{name, {}, {}});
      it = sets.end() - 1;
    }
    it->runs.push_back(std::move(summary));
    it->files.push_back(file);
  }
  return sets;
}

Stat stat_of(const std::vector<double>& values) {
  Stat s;
  s.n = static_cast<int64_t>(values.size());
  if (values.empty()) return s;
  for (const double v : values) s.mean += v;
  s.mean /= static_cast<double>(values.size());
  if (values.size() > 1) {
    double ss = 0;
    for (const double v : values) ss += (v - s.mean) * (v - s.mean);
    s.sd = std::sqrt(ss / static_cast<double>(values.size() - 1));
  }
  return s;
}

std::string format_stat(const Stat& s, int decimals) {
  if (s.n == 0) return "n/a";
  if (s.n == 1) return fmt::format("{:.{}f}", s.mean, decimals);
  return fmt::format("{:.{}f} ± {:.{}f}", s.mean, decimals, s.sd, decimals);
}

namespace {

/// `metric` over the runs (seeds) whose scores `pick` finds and that hold a value for it.
template <typename Pick>
std::vector<double> values_of(const ScoreSet& set, const std::string& metric, Pick pick) {
  std::vector<double> out;
  for (const auto& run : set.runs) {
    const metrics::Scores* scores = pick(run);
    if (scores == nullptr) continue;
    const auto it = scores->values.find(metric);
    if (it != scores->values.end() && it->second) out.push_back(*it->second);
  }
  return out;
}

/// The scores of `group` of `field` in `run`, or null.
const metrics::Scores* group_scores(const metrics::EvaluationSummary& run, const std::string& field,
                                    const std::string& group) {
  const auto f = run.groups.find(field);
  if (f == run.groups.end()) return nullptr;
  const auto g = f->second.find(group);
  return g == f->second.end() ? nullptr : &g->second;
}

std::string row(const std::vector<std::string>& cells) {
  std::string s = "|";
  for (const auto& c : cells) s += " " + c + " |";
  return s + "\n";
}

std::string header(const std::vector<std::string>& cells) {
  std::string s = row(cells) + "|";
  for (size_t i = 0; i < cells.size(); ++i) s += i == 0 ? "---|" : "---:|";
  return s + "\n";
}

}  // namespace

std::string scores_table(const std::vector<ScoreSet>& sets, const std::vector<std::string>& metrics) {
  const bool seeds = std::any_of(sets.begin(), sets.end(), [](const ScoreSet& s) { return s.runs.size() > 1; });
  std::vector<std::string> head = {"system"};
  if (seeds) head.emplace_back("seeds");
  head.insert(head.end(), metrics.begin(), metrics.end());
  std::string out = header(head);
  for (const auto& set : sets) {
    std::vector<std::string> cells = {set.name};
    if (seeds) cells.push_back(std::to_string(set.runs.size()));
    for (const auto& m : metrics)
      cells.push_back(
          format_stat(stat_of(values_of(set, m, [](const metrics::EvaluationSummary& r) { return &r.corpus; }))));
    out += row(cells);
  }
  return out;
}

std::vector<std::string> group_fields(const std::vector<ScoreSet>& sets) {
  std::set<std::string> fields;
  for (const auto& set : sets)
    for (const auto& run : set.runs)
      for (const auto& [field, groups] : run.groups) fields.insert(field);
  return {fields.begin(), fields.end()};
}

std::string group_table(const std::vector<ScoreSet>& sets, const std::string& field, const std::string& metric) {
  std::map<std::string, std::set<int64_t>> sizes;  // group -> the sizes the runs give it
  for (const auto& set : sets)
    for (const auto& run : set.runs) {
      const auto f = run.groups.find(field);
      if (f == run.groups.end()) continue;
      for (const auto& [g, scores] : f->second) sizes[g].insert(scores.n);
    }
  if (sizes.empty()) return "";
  // A group's size goes in the header when every run agrees on it; systems scored on different
  // splits (test, test_seen) do not, and then each cell says its own.
  std::vector<std::string> head = {"system"};
  for (const auto& [g, n] : sizes) head.push_back(n.size() == 1 ? fmt::format("{} (n={})", g, *n.begin()) : g);
  std::string out = header(head);
  for (const auto& set : sets) {
    std::vector<std::string> cells = {set.name};
    for (const auto& [g, n] : sizes) {
      const auto scores_of = [&](const metrics::EvaluationSummary& r) { return group_scores(r, field, g); };
      std::string cell = format_stat(stat_of(values_of(set, metric, scores_of)));
      const metrics::Scores* first = set.runs.empty() ? nullptr : scores_of(set.runs.front());
      if (n.size() > 1 && first != nullptr) cell += fmt::format(" (n={})", first->n);
      cells.push_back(cell);
    }
    out += row(cells);
  }
  return out;
}

std::string attention_on_finding_table(const std::string& records) {
  struct Sums {
    int64_t n = 0;
    double share = 0, area = 0;
  };
  std::map<std::string, Sums> branches;
  config::for_each_jsonl_object(records, [&](const config::Json& j, const std::string& where) {
    if (!j.contains("attention_on_finding")) return;
    const auto& share = j.at("attention_on_finding");
    MSMEDCAP_CHECK(share.is_object() && j.contains("finding_area") && j.at("finding_area").is_object(), where,
                   ": attention_on_finding and finding_area must be objects by branch");
    for (auto it = share.begin(); it != share.end(); ++it) {
      const auto& area = j.at("finding_area");
      MSMEDCAP_CHECK(it.value().is_number() && area.contains(it.key()) && area.at(it.key()).is_number(), where,
                     ": branch ", it.key(), ": expected numbers in attention_on_finding and finding_area");
      auto& b = branches[it.key()];
      ++b.n;
      b.share += it.value().get<double>();
      b.area += area.at(it.key()).get<double>();
    }
  });
  if (branches.empty()) return "";
  std::string out = header({"branch", "studies", "attention on the finding", "finding's share of the grid", "ratio"});
  for (const auto& [name, b] : branches) {
    const double share = b.share / static_cast<double>(b.n), area = b.area / static_cast<double>(b.n);
    out += row({name, std::to_string(b.n), fmt::format("{:.4f}", share), fmt::format("{:.4f}", area),
                area > 0 ? fmt::format("{:.2f}", share / area) : std::string("n/a")});
  }
  return out;
}

}  // namespace msmedcap::report
