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

Series metrics_series(const std::string& run_or_file, const std::string& key, bool validation, const std::string& name) {
  const std::string path =
      std::filesystem::is_directory(run_or_file) ? run_or_file + "/metrics.jsonl" : run_or_file;
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
    config::Json j = config::read_json_file(file);
    MSMEDCAP_CHECK(j.is_object(), file, ": expected the JSON object `msmedcap evaluate --json` writes");
    auto it = std::find_if(sets.begin(), sets.end(), [&](const ScoreSet& s) { return s.name == name; });
    if (it == sets.end()) {
      sets.push_back(ScoreSet{name, {}, {}});
      it = sets.end() - 1;
    }
    it->runs.push_back(std::move(j));
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

/// The values of `pointer` (a JSON pointer) over a set's runs; runs where it is absent or null
/// are skipped.
std::vector<double> values_at(const ScoreSet& set, const config::Json::json_pointer& pointer) {
  std::vector<double> out;
  for (size_t k = 0; k < set.runs.size(); ++k) {
    const auto& j = set.runs[k];
    if (!j.contains(pointer) || j.at(pointer).is_null()) continue;
    MSMEDCAP_CHECK(j.at(pointer).is_number(), set.files[k], ": ", pointer.to_string(), " is not a number");
    out.push_back(j.at(pointer).get<double>());
  }
  return out;
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
    for (const auto& m : metrics) cells.push_back(format_stat(stat_of(values_at(set, config::Json::json_pointer("/" + m)))));
    out += row(cells);
  }
  return out;
}

std::vector<std::string> group_fields(const std::vector<ScoreSet>& sets) {
  std::set<std::string> fields;
  for (const auto& set : sets)
    for (const auto& j : set.runs)
      if (j.contains("groups") && j["groups"].is_object())
        for (const auto& [field, groups] : j["groups"].items()) fields.insert(field);
  return {fields.begin(), fields.end()};
}

std::string group_table(const std::vector<ScoreSet>& sets, const std::string& field, const std::string& metric) {
  std::vector<std::string> groups;
  std::map<std::string, int64_t> sizes;
  for (const auto& set : sets)
    for (const auto& j : set.runs) {
      if (!j.contains("groups") || !j["groups"].contains(field)) continue;
      for (const auto& [g, v] : j["groups"][field].items()) {
        if (!sizes.count(g)) groups.push_back(g);
        sizes[g] = v.value("n", int64_t{0});
      }
    }
  if (groups.empty()) return "";
  std::sort(groups.begin(), groups.end());
  std::vector<std::string> head = {"system"};
  for (const auto& g : groups) head.push_back(fmt::format("{} (n={})", g, sizes[g]));
  std::string out = header(head);
  for (const auto& set : sets) {
    std::vector<std::string> cells = {set.name};
    for (const auto& g : groups) {
      config::Json::json_pointer p("/groups");
      p /= field;
      p /= g;
      p /= metric;
      cells.push_back(format_stat(stat_of(values_at(set, p))));
    }
    out += row(cells);
  }
  return out;
}

}  // namespace msmedcap::report
