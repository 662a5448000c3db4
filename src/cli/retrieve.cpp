// msmedcap retrieve (--run DIR | -c CFG...) --dataset data|val_data [--branch clip|sam]
//   [--rerank K] [--json OUT.json]: image-text retrieval recall of a stage-1 Q-Former.

#include <iostream>

#include "commands.h"
#include "msmedcap/core/atomic_file.h"
#include "msmedcap/core/logging.h"
#include "msmedcap/data/tokenizer.h"
#include "msmedcap/inference/retrieval.h"
#include "msmedcap/inference/run_setup.h"

namespace msmedcap::cli {
namespace {

struct RetrieveOptions {
  ConfigOptions config;
  std::string run_dir, dataset = "val_data", branch, json;
  int64_t rerank = 0, batch_size = 0;
};

void run(const RetrieveOptions& o, const GlobalOptions& globals) {
  config::RunConfig cfg;
  const config::Json resolved = resolve_inference_config(cfg, o.config, o.run_dir, globals);
  if (o.config.dump_config) {
    std::cout << resolved.dump(2) << "\n";
    return;
  }
  const config::Branch branch = o.branch.empty() ? (cfg.model.use_clip ? config::Branch::kClip : config::Branch::kSam)
                                                 : config::parse_branch(o.branch, "retrieve: --branch");
  MSMEDCAP_CHECK(!cfg.tokenizers.qformer.empty(),
                 "retrieve: the config names no Q-Former tokenizer (tokenizers.qformer)");
  const auto tokenizer = data::load_tokenizer(cfg.tokenizers.qformer);
  auto model = inference::load_inference_model(cfg, "retrieve");
  model->heads(branch);  // the branch must have its stage-1 heads

  const int64_t batch = o.batch_size > 0 ? o.batch_size : cfg.loader.batch_size;
  const auto set = inference::encode_retrieval_set(*model, branch, read_config_dataset(cfg, o.dataset),
                                                   cfg.data.transform, *tokenizer, cfg.train.qformer_max_len, batch);
  for (const auto& problem : set.unreadable) core::log_warn("retrieve", "skipped {}", problem);
  const auto scores = inference::retrieval_scores(*model, branch, set.inputs, o.rerank, batch);
  const auto recall = inference::retrieval_recall(scores, set.text_image);

  std::cout << fmt::format("{} images, {} texts, {} branch, {}\n", set.images, set.text_image.size(),
                           config::branch_name(branch),
                           o.rerank > 0 ? fmt::format("ITC then ITM over the top {}", o.rerank) : std::string("ITC"));
  std::cout << fmt::format("image->text  R@1 {:6.2f}  R@5 {:6.2f}  R@10 {:6.2f}\n", recall.at("txt_r1"),
                           recall.at("txt_r5"), recall.at("txt_r10"));
  std::cout << fmt::format("text->image  R@1 {:6.2f}  R@5 {:6.2f}  R@10 {:6.2f}\n", recall.at("img_r1"),
                           recall.at("img_r5"), recall.at("img_r10"));
  if (!set.unreadable.empty()) core::log_warn("retrieve", "{} unreadable images left out", set.unreadable.size());
  if (!o.json.empty()) {
    config::Json out(recall);
    out["images"] = set.images;
    out["texts"] = set.text_image.size();
    out["branch"] = config::branch_name(branch);
    out["rerank_k"] = o.rerank;
    core::write_file_atomic(o.json, out.dump(2) + "\n");
  }
}

}  // namespace

void register_retrieve(CLI::App& app, const GlobalOptions& globals) {
  auto o = std::make_shared<RetrieveOptions>();
  auto* cmd = app.add_subcommand("retrieve", "image-text retrieval recall (R@1/5/10 both ways) of a stage-1 Q-Former");
  add_config_options(cmd, o->config);
  add_model_option(cmd, o->config);
  add_run_option(cmd, o->run_dir);
  cmd->add_option("--dataset", o->dataset, "the config section whose sources are searched")->capture_default_str();
  cmd->add_option("--branch", o->branch, "clip or sam (default: clip when the model has it)");
  cmd->add_option("--rerank", o->rerank, "re-rank each row's top K by ITM (0 = ITC only)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--batch-size", o->batch_size, "images per encoder batch (default: loader.batch_size)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--json", o->json, "write the recall metrics as JSON here");
  cmd->callback([o, &globals] { run(*o, globals); });
}

}  // namespace msmedcap::cli
