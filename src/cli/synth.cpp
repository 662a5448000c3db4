// msmedcap synth --out DIR [--n N] [--seed S] [--image-size PX]: the built-in synthetic
// radiology captioning benchmark (images + train/val/test JSONL).
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
  cmd->callback([o, &globals] {
    if (!globals.log_level.empty()) core::init_logging(globals.log_level);
    const auto counts = data::write_synthetic_dataset(o->out, o->synth);
    core::log_info("synth", "{}: {} train, {} val, {} test studies", o->out, counts[0], counts[1], counts[2]);
  });
}

}  // namespace msmedcap::cli
