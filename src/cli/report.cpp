// msmedcap report --out REPORT.md [--scores NAME=EVAL.json]... [--figure PNG[=CAPTION]]...
// [--examples PRED.jsonl --references REF.jsonl [--attention-maps DIR]] [--attention-on-finding F.jsonl]:
// a markdown report of an experiment: scores (mean ± sd over seeds), breakdowns by group, figures, example captions.
#include <filesystem>
#include <iostream>

#include "commands.h"
#include "msmedcap/core/atomic_file.h"
#include "msmedcap/core/check.h"
#include "msmedcap/inference/batch_caption.h"
#include "msmedcap/metrics/evaluate.h"
#include "msmedcap/report/summary.h"

namespace msmedcap::cli {
namespace {

namespace fs = std::filesystem;

/// `path` as the report (in `dir`) links it.
std::string link(const std::string& path, const fs::path& dir) {
  return fs::relative(fs::absolute(path), fs::absolute(dir)).generic_string();
}

/// Markdown table cells cannot hold '|' or newlines.
std::string cell(std::string s) {
  for (auto& c : s)
    if (c == '|' || c == '\n' || c == '\r') c = ' ';
  return s;
}

std::string examples_section(const std::string& pred_path, const std::string& ref_path, const std::string& maps,
                             int64_t n, const fs::path& dir) {
  const auto refs = metrics::read_references(ref_path);
  std::ifstream in(pred_path);
  MSMEDCAP_CHECK(in.good(), pred_path, ": cannot open");
  std::string out = "| image |";
  if (!maps.empty()) out += " CLIP attention | SAM attention |";
  out += " generated | reference |\n|---|";
  if (!maps.empty()) out += "---|---|";
  out += "---|---|\n";
  std::string line;
  int64_t shown = 0;
  for (int64_t k = 1; shown < n && std::getline(in, line); ++k) {
    const auto j = config::Json::parse(line, nullptr, false);
    MSMEDCAP_CHECK(!j.is_discarded() && j.is_object() && j.contains("id"), pred_path, ":", k, ": not a caption record");
    if (!j.contains("caption")) continue;  // an unreadable image
    const std::string id = j["id"].is_string() ? j["id"].get<std::string>() : j["id"].dump();
    const auto r = refs.find(id);
    MSMEDCAP_CHECK(r != refs.end(), ref_path, ": no reference for ", id);
    out += "| ";
    if (j.contains("image")) out += "![" + cell(id) + "](" + link(j["image"].get<std::string>(), dir) + ")";
    out += " |";
    if (!maps.empty()) {
      for (const auto branch : {config::Branch::kClip, config::Branch::kSam}) {
        const std::string map = inference::attention_map_path(maps, id, branch);
        out +=
            fs::exists(map) ? " ![" + std::string(config::branch_name(branch)) + "](" + link(map, dir) + ") |" : " |";
      }
    }
    out += " " + cell(j["caption"].get<std::string>()) + " | " + cell(r->second.front()) + " |\n";
    ++shown;
  }
  return out;
}

}  // namespace

void register_report(CLI::App& app, const GlobalOptions& globals) {
  struct Options {
    std::string out, title = "msmedcap report", intro, pred, ref, maps, attention;
    std::vector<std::string> scores, figures;
    std::vector<std::string> metrics = msmedcap::metrics::metric_names();
    std::vector<std::string> group_metrics = {"Bleu_4", "CIDEr"};
    int64_t examples = 6;
  };
  auto o = std::make_shared<Options>();
  auto* cmd =
      app.add_subcommand("report", "a markdown report: scores over seeds, breakdowns, figures, example captions");
  cmd->add_option("--out", o->out, "markdown file to write (links are relative to its folder)")->required();
  cmd->add_option("--title", o->title, "heading");
  cmd->add_option("--intro", o->intro, "markdown file placed under the heading");
  cmd->add_option("--scores", o->scores, "NAME=EVAL.json from `evaluate --json` (repeat a NAME for seeds)");
  cmd->add_option("--metrics", o->metrics, "score columns")->delimiter(',');
  cmd->add_option("--group-metrics", o->group_metrics, "metrics of the breakdown tables (evaluate --by)")
      ->delimiter(',');
  cmd->add_option("--figure", o->figures, "PNG[=CAPTION] to show (repeatable)");
  cmd->add_option("--examples", o->pred, "caption records (caption --out) to show beside their references");
  cmd->add_option("--references", o->ref, "references for --examples");
  cmd->add_option("--attention-maps", o->maps, "folder of caption --attention-maps PNGs for --examples");
  cmd->add_option("--n", o->examples, "examples to show")->check(CLI::Range(1, 1000));
  cmd->add_option("--attention-on-finding", o->attention,
                  "caption records with attention measures (caption --attention-on-finding) to summarise");
  cmd->callback([o, &globals] {
    MSMEDCAP_CHECK(o->pred.empty() == o->ref.empty(), "report: --examples and --references go together");
    const fs::path dir = fs::path(o->out).parent_path().empty() ? fs::path(".") : fs::path(o->out).parent_path();
    std::string md = "# " + o->title + "\n\n";
    if (!o->intro.empty()) {
      std::ifstream in(o->intro);
      MSMEDCAP_CHECK(in.good(), o->intro, ": cannot open");
      md += std::string(std::istreambuf_iterator<char>(in), {}) + "\n";
    }
    const auto sets = report::read_score_sets(o->scores);
    if (!sets.empty()) {
      md += "## Scores\n\n" + report::scores_table(sets, o->metrics) + "\n";
      for (const auto& field : report::group_fields(sets))
        for (const auto& metric : o->group_metrics) {
          const auto table = report::group_table(sets, field, metric);
          if (!table.empty()) md += "### " + metric + " by " + field + "\n\n" + table + "\n";
        }
    }
    if (!o->figures.empty()) {
      md += "## Figures\n\n";
      for (const auto& f : o->figures) {
        const auto eq = f.find('=');
        const std::string path = f.substr(0, eq),
                          caption = eq == std::string::npos ? fs::path(path).stem().string() : f.substr(eq + 1);
        MSMEDCAP_CHECK(fs::exists(path), "--figure ", path, ": no such file");
        md += "**" + caption + "**\n\n![" + caption + "](" + link(path, dir) + ")\n\n";
      }
    }
    if (!o->attention.empty()) {
      const std::string table = report::attention_on_finding_table(o->attention);
      MSMEDCAP_CHECK(!table.empty(), o->attention, ": no record has attention_on_finding");
      md +=
          "## Where the Q-Formers look\n\nThe share of each branch's Q-Former cross-attention (averaged over "
          "layers, heads and queries) that falls on the finding's mask, beside the mask's share of the "
          "branch's grid: a ratio of 1 is attention spread evenly, above 1 attention drawn to the "
          "finding.\n\n" +
          table + "\n";
    }
    if (!o->pred.empty()) md += "## Examples\n\n" + examples_section(o->pred, o->ref, o->maps, o->examples, dir) + "\n";
    core::write_file_atomic(o->out, md);
    std::cout << md;
  });
}

}  // namespace msmedcap::cli
