// msmedcap evaluate --pred PRED.jsonl --ref REF.jsonl [--json OUT.json] [--per-item F.jsonl] [--by FIELD]...
// [--attributes RULES.json]: pycocoevalcap's captioning metrics on PTB-tokenised text, and the
// attribute metrics of a rule file, as tables on stdout.
#include <algorithm>
#include <cstdio>
#include <iostream>
#include <optional>

#include "commands.h"
#include "msmedcap/core/atomic_file.h"
#include "msmedcap/core/logging.h"
#include "msmedcap/metrics/attributes.h"
#include "msmedcap/metrics/evaluate.h"
#include "msmedcap/metrics/meteor.h"

namespace msmedcap::cli {

void register_evaluate(CLI::App& app, const GlobalOptions& globals) {
  struct Options {
    std::string pred, ref, json, per_item, attributes;
    std::vector<std::string> by;
    metrics::MeteorOptions meteor;
    bool no_meteor = false;
  };
  auto o = std::make_shared<Options>();
  auto* cmd =
      app.add_subcommand("evaluate", "BLEU-1..4, METEOR, ROUGE-L and CIDEr-D of predicted captions against references");
  cmd->add_option("--pred", o->pred, "predictions: JSONL lines {\"id\", \"caption\"}")->required();
  cmd->add_option("--ref", o->ref, "references: JSONL lines {\"id\", \"captions\": [...]} or {\"id\", \"caption\"}")
      ->required();
  cmd->add_option("--json", o->json, "write the corpus scores as JSON here");
  cmd->add_option("--per-item", o->per_item, "write each item's scores as JSONL here");
  cmd->add_option("--wordnet", o->meteor.wordnet_dir,
                  "WordNet 3.0 folder for METEOR's synonym module (empty: module off)")
      ->capture_default_str();
  cmd->add_option("--function-words", o->meteor.function_words_file,
                  "METEOR function word list, one per line (default: the built-in English list)");
  cmd->add_flag("--no-meteor", o->no_meteor, "skip METEOR (it writes null)");
  cmd->add_option("--by", o->by,
                  "also score each group of a reference field (repeatable), e.g. --by size --by finding");
  cmd->add_option("--attributes", o->attributes,
                  "also read attributes out of the captions with this rule file (e.g. "
                  "configs/attributes/synthetic.json): accuracy and macro-F1 per attribute")
      ->check(CLI::ExistingFile);
  cmd->callback([o, &globals] {
    core::init_logging(globals.log_level.empty() ? "info" : globals.log_level);
    const auto predictions = metrics::read_predictions(o->pred);
    const auto references = metrics::read_references(o->ref);
    std::unique_ptr<metrics::Meteor> meteor;
    if (!o->no_meteor) {
      meteor = std::make_unique<metrics::Meteor>(o->meteor);
      core::log_info("evaluate", "METEOR modules: {}", meteor->modules());
    }
    std::optional<metrics::AttributeRules> rules;
    if (!o->attributes.empty()) rules = metrics::read_attribute_rules(o->attributes);
    const auto ev = metrics::evaluate(predictions, references, meteor.get());
    metrics::EvaluationSummary summary;
    summary.corpus = metrics::scores_of(ev);
    std::vector<std::string> names = metrics::metric_names();
    if (rules) {
      metrics::score_attributes(*rules, predictions, references, ev.ids, summary.corpus);
      const auto attribute_names = metrics::attribute_metric_names(*rules);
      names.insert(names.end(), attribute_names.begin(), attribute_names.end());
    }
    auto cell = [](const metrics::Scores& s, const std::string& name, const char* format) {
      const auto& v = s.values.at(name);
      return v ? fmt::format(format, *v) : std::string("n/a");
    };
    std::cout << fmt::format("{:<14} score\n", "metric");
    for (const auto& name : names) std::cout << fmt::format("{:<14} {}\n", name, cell(summary.corpus, name, "{:.4f}"));
    std::cout << fmt::format("{} items\n", ev.ids.size());
    for (const auto& field : o->by) {
      const auto groups =
          metrics::evaluate_groups(predictions, references, metrics::read_reference_field(o->ref, field), meteor.get());
      std::cout << fmt::format("\nby {}:\n{:<16} {:>5}", field, field, "n");
      for (const auto& name : names) std::cout << fmt::format(" {:>{}}", name, std::max<size_t>(8, name.size()));
      std::cout << "\n";
      for (const auto& [group, g] : groups) {
        metrics::Scores scores = metrics::scores_of(g);
        if (rules) metrics::score_attributes(*rules, predictions, references, g.ids, scores);
        std::cout << fmt::format("{:<16} {:>5}", group, scores.n);
        for (const auto& name : names)
          std::cout << fmt::format(" {:>{}}", cell(scores, name, "{:.4f}"), std::max<size_t>(8, name.size()));
        std::cout << "\n";
        summary.groups[field][group] = scores;
      }
    }
    if (!o->json.empty()) core::write_file_atomic(o->json, metrics::to_json(summary).dump(2) + "\n");
    if (!o->per_item.empty()) {
      std::string lines;
      for (size_t i = 0; i < ev.ids.size(); ++i) {
        config::Json line{{"id", ev.ids[i]}};
        for (const auto& [name, scores] : ev.per_item) line[name] = scores[i];
        lines += line.dump() + "\n";
      }
      core::write_file_atomic(o->per_item, lines);
    }
  });
}

}  // namespace msmedcap::cli
