// msmedcap train-tokenizer --input CORPUS --out PREFIX [--vocab-size N]: a SentencePiece model
// (LLaMA-style) trained on a caption corpus.
#include "commands.h"
#include "msmedcap/core/check.h"
#include "msmedcap/core/logging.h"
#include "msmedcap/data/sentencepiece.h"

namespace msmedcap::cli {

void register_train_tokenizer(CLI::App& app, const GlobalOptions& globals) {
  struct Options {
    std::string input, out, model_type = "bpe";
    int64_t vocab_size = 8000;
    double character_coverage = 1.0;
  };
  auto o = std::make_shared<Options>();
  auto* cmd = app.add_subcommand("train-tokenizer", "train a SentencePiece model on a caption corpus (one text per line)");
  cmd->add_option("--input", o->input, "text file, one caption per line")->required()->check(CLI::ExistingFile);
  cmd->add_option("--out", o->out, "output prefix: writes PREFIX.model and PREFIX.vocab")->required();
  cmd->add_option("--vocab-size", o->vocab_size, "vocabulary size")->check(CLI::Range(16, 1000000));
  cmd->add_option("--model-type", o->model_type, "bpe or unigram")->check(CLI::IsMember({"bpe", "unigram"}));
  cmd->add_option("--character-coverage", o->character_coverage, "share of characters covered")->check(CLI::Range(0.5, 1.0));
  cmd->callback([o, &globals] {
    if (!globals.log_level.empty()) core::init_logging(globals.log_level);
    MSMEDCAP_CHECK(o->input.find(' ') == std::string::npos && o->out.find(' ') == std::string::npos,
                   "train-tokenizer: paths with spaces are not supported by SentencePiece's argument parser");
    // LLaMA-style: byte fallback, digits split, ids 0..3 = <unk> <s> </s> <pad>.
    const std::string args = "--input=" + o->input + " --model_prefix=" + o->out +
                             " --vocab_size=" + std::to_string(o->vocab_size) + " --model_type=" + o->model_type +
                             " --character_coverage=" + std::to_string(o->character_coverage) +
                             " --byte_fallback=true --split_digits=true --unk_id=0 --bos_id=1 --eos_id=2 --pad_id=3"
                             " --hard_vocab_limit=false --minloglevel=2";
    data::SentencePieceTokenizer::train(args);
    const data::SentencePieceTokenizer check(o->out + ".model");
    core::log_info("train-tokenizer", "{}.model: {} pieces", o->out, check.vocab_size());
  });
}

}  // namespace msmedcap::cli
