// msmedcap compare --a A.jsonl... --b B.jsonl... --ref REF.jsonl --attributes RULES.json --attribute NAME
//   [--where FIELD=VALUE] [--samples N] [--seed S] [--json OUT.json]: a paired comparison of two systems'
//   attribute accuracy on the same studies, with a bootstrap 95% interval.
#include <iostream>

#include "commands.h"
#include "msmedcap/core/atomic_file.h"
#include "msmedcap/core/check.h"
#include "msmedcap/core/logging.h"
#include "msmedcap/metrics/attributes.h"
#include "msmedcap/metrics/evaluate.h"

namespace msmedcap::cli {

void register_compare(CLI::App& app, const GlobalOptions& globals) {
  struct Options {
    std::vector<std::string> a, b;
    std::string ref, rules, attribute, where, json;
    int64_t samples = 10000;
    uint64_t seed = 0;
  };
  auto o = std::make_shared<Options>();
  auto* cmd = app.add_subcommand(
      "compare", "paired comparison of two systems' attribute accuracy with a bootstrap 95% interval (b - a)");
  cmd->add_option("--a", o->a, "predictions of system A (repeat for seeds: paired in order with --b)")->required();
  cmd->add_option("--b", o->b, "predictions of system B, one per --a")->required();
  cmd->add_option("--ref", o->ref, "references (with the fields --where names)")->required();
  cmd->add_option("--attributes", o->rules, "attribute rule file (evaluate --attributes)")
      ->required()
      ->check(CLI::ExistingFile);
  cmd->add_option("--attribute", o->attribute, "the attribute compared, e.g. finding")->required();
  cmd->add_option("--where", o->where, "only the studies whose reference FIELD=VALUE, e.g. size=small");
  cmd->add_option("--samples", o->samples, "bootstrap samples")->capture_default_str();
  cmd->add_option("--seed", o->seed, "bootstrap seed")->capture_default_str();
  cmd->add_option("--json", o->json, "write the result as JSON here");
  cmd->callback([o, &globals] {
    core::init_logging(globals.log_level.empty() ? "info" : globals.log_level);
    MSMEDCAP_CHECK(o->a.size() == o->b.size(), "compare: ", o->a.size(), " --a files and ", o->b.size(),
                   " --b files; they pair in order");
    const auto rules = metrics::read_attribute_rules(o->rules);
    const auto refs = metrics::read_references(o->ref);
    std::vector<std::string> ids;
    if (o->where.empty()) {
      for (const auto& [id, captions] : refs) ids.push_back(id);
    } else {
      const auto eq = o->where.find('=');
      MSMEDCAP_CHECK(eq != std::string::npos && eq > 0, "compare: --where ", o->where, ": expected FIELD=VALUE");
      for (const auto& [id, value] : metrics::read_reference_field(o->ref, o->where.substr(0, eq)))
        if (value == o->where.substr(eq + 1)) ids.push_back(id);
      MSMEDCAP_CHECK(!ids.empty(), "compare: no study of ", o->ref, " has ", o->where);
    }
    std::vector<bool> a, b;
    for (size_t k = 0; k < o->a.size(); ++k) {
      const auto pa = metrics::attribute_correct(rules, o->attribute, metrics::read_predictions(o->a[k]), refs, ids);
      const auto pb = metrics::attribute_correct(rules, o->attribute, metrics::read_predictions(o->b[k]), refs, ids);
      a.insert(a.end(), pa.begin(), pa.end());
      b.insert(b.end(), pb.begin(), pb.end());
    }
    const auto d = metrics::paired_bootstrap(a, b, o->samples, o->seed);
    std::cout << fmt::format("{} accuracy{}: a {:.4f}, b {:.4f}, b - a {:+.4f} (95% CI {:+.4f} to {:+.4f}), {} pairs\n",
                             o->attribute, o->where.empty() ? "" : " where " + o->where, d.a, d.b, d.difference, d.low,
                             d.high, d.n);
    if (!o->json.empty()) {
      const config::Json j{{"attribute", o->attribute},  {"where", o->where}, {"a", d.a},       {"b", d.b},
                           {"difference", d.difference}, {"low", d.low},      {"high", d.high}, {"n", d.n}};
      core::write_file_atomic(o->json, j.dump(2) + "\n");
    }
  });
}

}  // namespace msmedcap::cli
