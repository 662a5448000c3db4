// msmedcap baseline --train TRAIN.jsonl --ref REF.jsonl --out PRED.jsonl [--by FIELD]: the most
// frequent training caption, predicted for every reference id (the constant baseline a captioner
// must beat); with --by, the most frequent of the training studies that share the reference's
// FIELD (given the true modality, say: what a model that only sees the modality could write).
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
    std::string train, ref, out, by;
    bool raw = false;
  };
  auto o = std::make_shared<Options>();
  auto* cmd = app.add_subcommand("baseline",
                                 "predict the most frequent training caption for every image (a constant baseline)");
  cmd->add_option("--train", o->train, "training captions: JSONL with id and caption(s)")->required();
  cmd->add_option("--ref", o->ref, "references whose ids get the prediction (caption --references-out)")->required();
  cmd->add_option("--out", o->out, "predictions JSONL {\"id\", \"caption\"}")->required();
  cmd->add_option("--by", o->by,
                  "per group of this field (read from both files' lines; a group without training captions "
                  "gets the overall one)");
  cmd->add_flag("--raw", o->raw,
                "count captions as written (default: after LAVIS's cleaning, as the models learn them)");
  cmd->callback([o, &globals] {
    core::init_logging(globals.log_level.empty() ? "info" : globals.log_level);
    // group -> caption -> count; "" holds every training caption.
    std::map<std::string, std::map<std::string, int64_t>> counts;
    std::map<std::string, std::string> train_group, ref_group;
    if (!o->by.empty()) {
      train_group = metrics::read_reference_field(o->train, o->by);
      ref_group = metrics::read_reference_field(o->ref, o->by);
    }
    int64_t total = 0;
    for (const auto& [id, captions] : metrics::read_references(o->train))
      for (const auto& c : captions) {
        const std::string text = o->raw ? c : data::clean_caption(c);
        ++counts[""][text];
        if (!o->by.empty()) ++counts[train_group.at(id)][text];
        ++total;
      }
    MSMEDCAP_CHECK(!counts[""].empty(), o->train, ": no captions");
    auto most_frequent = [&](const std::string& group) {
      const auto& c = counts.count(group) ? counts.at(group) : counts.at("");
      auto best = c.begin();  // ties: the first in text order
      for (auto it = c.begin(); it != c.end(); ++it)
        if (it->second > best->second) best = it;
      return *best;
    };
    std::string lines;
    const auto refs = metrics::read_references(o->ref);
    std::map<std::string, int64_t> used;
    for (const auto& [id, captions] : refs) {
      const std::string group = o->by.empty() ? "" : ref_group.at(id);
      const auto [caption, n] = most_frequent(group);
      ++used[caption];
      lines += config::Json{{"id", id}, {"caption", caption}}.dump() + "\n";
    }
    core::write_file_atomic(o->out, lines);
    for (const auto& [caption, n] : used)
      core::log_info("baseline", "\"{}\" for {} of {} images ({} training captions, {} distinct) -> {}", caption, n,
                     refs.size(), total, counts[""].size(), o->out);
  });
}

}  // namespace msmedcap::cli
