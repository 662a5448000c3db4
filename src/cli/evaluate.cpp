// msmedcap evaluate --pred PRED.jsonl --ref REF.jsonl [--json OUT.json] [--per-item F.jsonl]:
// pycocoevalcap's captioning metrics on PTB-tokenised text, as a table on stdout.
#include <cstdio>
#include <iostream>

#include "commands.h"
#include "msmedcap/core/atomic_file.h"
#include "msmedcap/core/logging.h"
#include "msmedcap/metrics/evaluate.h"

namespace msmedcap::cli {

void register_evaluate(CLI::App& app, const GlobalOptions& globals) {
  struct Options {
    std::string pred, ref, json, per_item;
  };
  auto o = std::make_shared<Options>();
  auto* cmd = app.add_subcommand("evaluate", "BLEU-1..4, ROUGE-L and CIDEr-D of predicted captions against references");
  cmd->add_option("--pred", o->pred, "predictions: JSONL lines {\"id\", \"caption\"}")->required();
  cmd->add_option("--ref", o->ref, "references: JSONL lines {\"id\", \"captions\": [...]} or {\"id\", \"caption\"}")->required();
  cmd->add_option("--json", o->json, "write the corpus scores as JSON here");
  cmd->add_option("--per-item", o->per_item, "write each item's scores as JSONL here");
  cmd->callback([o, &globals] {
    core::init_logging(globals.log_level.empty() ? "info" : globals.log_level);
    const auto ev = metrics::evaluate(metrics::read_predictions(o->pred), metrics::read_references(o->ref));
    static const char* kOrder[] = {"Bleu_1", "Bleu_2", "Bleu_3", "Bleu_4", "METEOR", "ROUGE_L", "CIDEr"};
    config::Json out = config::Json::object();
    std::cout << "metric    score\n";
    for (const char* name : kOrder) {
      const auto it = ev.corpus.find(name);
      if (it == ev.corpus.end()) {
        out[name] = nullptr;  // METEOR: not computed yet
        std::cout << fmt::format("{:<9} {}\n", name, "n/a");
      } else {
        out[name] = it->second;
        std::cout << fmt::format("{:<9} {:.4f}\n", name, it->second);
      }
    }
    std::cout << fmt::format("{} items\n", ev.ids.size());
    if (!o->json.empty()) core::write_file_atomic(o->json, out.dump(2) + "\n");
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
