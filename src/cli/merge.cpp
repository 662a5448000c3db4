// msmedcap merge --clip A --sam B --out FILE: MSMedCap's mixed-semantic merge of two stage-1
// results (run folders, checkpoint folders or safetensors files) into one weights file.
#include "commands.h"
#include "msmedcap/core/logging.h"
#include "msmedcap/io/checkpoint.h"
#include "msmedcap/io/tensor_store.h"
#include "msmedcap/training/merge.h"

namespace msmedcap::cli {

void register_merge(CLI::App& app, const GlobalOptions& globals) {
  struct Options {
    std::string clip, sam, out;
  };
  auto o = std::make_shared<Options>();
  auto* cmd = app.add_subcommand("merge", "merge a CLIP-branch and a SAM-branch stage-1 result for stage 2");
  cmd->add_option("--clip", o->clip, "CLIP-branch stage-1 run folder, checkpoint folder or .safetensors")->required();
  cmd->add_option("--sam", o->sam, "SAM-branch stage-1 run folder, checkpoint folder or .safetensors")->required();
  cmd->add_option("--out", o->out, "merged weights (.safetensors)")->required();
  cmd->callback([o, &globals] {
    core::init_logging(globals.log_level.empty() ? "info" : globals.log_level);
    const std::string clip = io::resolve_run_folder(o->clip), sam = io::resolve_run_folder(o->sam);
    const auto merged = training::merge_stage1(io::TensorStore::open(clip).load_all(),
                                               io::TensorStore::open(sam).load_all(), clip, sam);
    io::save_safetensors(o->out, merged, {{"format", "pt"}, {"msmedcap", "stage1 merge of " + clip + " and " + sam}});
    core::log_info("merge", "{} tensors from {} and {} -> {}", merged.size(), clip, sam, o->out);
  });
}

}  // namespace msmedcap::cli
