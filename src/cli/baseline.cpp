// msmedcap baseline --train TRAIN.jsonl --ref REF.jsonl --out PRED.jsonl: the most frequent
// training caption, predicted for every reference id (the constant baseline a captioner must beat).
#include <map>

#include "commands.h"
#include "msmedcap/core/atomic_file.h"
#include "msmedcap/core/check.h"
#include "msmedcap/core/logging.h"
#include "msmedcap/data/text.h"
#include "msmedcap/metrics/evaluate.h"

namespace msmedcap::cli {

void register_baseline(CLI::App& app, const GlobalOptions& globals) {
  struct Options {
    std::string train, ref, out;
    bool raw = false;
  };
  auto o = std::make_shared<Options>();
  auto* cmd = app.add_subcommand("baseline",
                                 "predict the most frequent training caption for every image (a constant baseline)");
  cmd->add_option("--train", o->train, "training captions: JSONL with id and caption(s)")->required();
  cmd->add_option("--ref", o->ref, "references whose ids get the prediction (caption --references-out)")->required();
  cmd->add_option("--out", o->out, "predictions JSONL {\"id\", \"caption\"}")->required();
  cmd->add_flag("--raw", o->raw,
                "count captions as written (default: after LAVIS's cleaning, as the models learn them)");
  cmd->callback([o, &globals] {
    core::init_logging(globals.log_level.empty() ? "info" : globals.log_level);
    std::map<std::string, int64_t> counts;
    int64_t total = 0;
    for (const auto& [id, captions] : metrics::read_references(o->train))
      for (const auto& c : captions) {
        ++counts[o->raw ? c : data::clean_caption(c)];
        ++total;
      }
    MSMEDCAP_CHECK(!counts.empty(), o->train, ": no captions");
    auto best = counts.begin();  // ties: the first in text order
    for (auto it = counts.begin(); it != counts.end(); ++it)
      if (it->second > best->second) best = it;
    std::string lines;
    const auto refs = metrics::read_references(o->ref);
    for (const auto& [id, captions] : refs) lines += config::Json{{"id", id}, {"caption", best->first}}.dump() + "\n";
    core::write_file_atomic(o->out, lines);
    core::log_info("baseline", "\"{}\" ({} of {} training captions, {} distinct) for {} images -> {}", best->first,
                   best->second, total, counts.size(), refs.size(), o->out);
  });
}

}  // namespace msmedcap::cli
