// msmedcap synth --out DIR [--n N] [--seed S] [--image-size PX] [--val-fraction F]
// [--seen-test-fraction F]: the built-in synthetic radiology captioning benchmark (images +
// train/val/test/test_seen JSONL).
#include <cstdio>

#include "commands.h"
#include "msmedcap/core/logging.h"
#include "msmedcap/data/synthetic.h"

namespace msmedcap::cli {

void register_synth(CLI::App& app, const GlobalOptions& globals) {
  struct Options {
    std::string out;
    data::SynthOptions synth;
  };
  auto o = std::make_shared<Options>();
  auto* cmd = app.add_subcommand("synth", "write the built-in synthetic benchmark (images + JSONL splits)");
  cmd->add_option("--out", o->out, "output folder")->required();
  cmd->add_option("--n", o->synth.n, "studies in all splits together")->check(CLI::PositiveNumber);
  cmd->add_option("--seed", o->synth.seed, "random seed (same seed, same files)");
  cmd->add_option("--image-size", o->synth.image_size, "image side in pixels")->check(CLI::Range(64, 4096));
  cmd->add_option("--val-fraction", o->synth.val_fraction, "share of the seen combinations' studies for val")
      ->check(CLI::Range(0.0, 0.9));
  cmd->add_option("--seen-test-fraction", o->synth.seen_test_fraction,
                  "share of the seen combinations' studies for test_seen (unseen studies, seen combinations)")
      ->check(CLI::Range(0.0, 0.9));
  cmd->callback([o, &globals] {
    if (!globals.log_level.empty()) core::init_logging(globals.log_level);
    const auto counts = data::write_synthetic_dataset(o->out, o->synth);
    core::log_info("synth", "{}: {} train, {} val, {} test (unseen combinations), {} test_seen studies", o->out,
                   counts[0], counts[1], counts[2], counts[3]);
  });
}

}  // namespace msmedcap::cli
