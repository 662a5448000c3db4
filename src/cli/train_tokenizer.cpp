// msmedcap train-tokenizer --input CORPUS --out DIR [--kind sentencepiece|wordpiece]: a tokenizer
// trained on a caption corpus, written in HuggingFace's folder layout.
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "commands.h"
#include "msmedcap/core/atomic_file.h"
#include "msmedcap/core/check.h"
#include "msmedcap/core/logging.h"
#include "msmedcap/data/sentencepiece.h"
#include "msmedcap/data/text.h"
#include "msmedcap/data/wordpiece.h"

namespace msmedcap::cli {
namespace {

/// The corpus: one text per line, or a JSONL dataset's "caption" / "captions" fields.
std::vector<std::string> read_corpus(const std::string& path, bool clean) {
  std::ifstream in(path);
  MSMEDCAP_CHECK(in, path, ": cannot open the corpus");
  const bool jsonl = std::filesystem::path(path).extension() == ".jsonl";
  std::vector<std::string> texts;
  std::string line;
  for (int64_t n = 1; std::getline(in, line); ++n) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    if (!jsonl) {
      texts.push_back(line);
      continue;
    }
    nlohmann::json row;
    try {
      row = nlohmann::json::parse(line);
    } catch (const nlohmann::json::exception& e) {
      MSMEDCAP_FAIL(path, ":", n, ": malformed JSON (", e.what(), ")");
    }
    MSMEDCAP_CHECK(row.is_object() && (row.contains("caption") || row.contains("captions")), path, ":", n,
                   ": expected an object with \"caption\" or \"captions\"");
    const auto& field = row.contains("caption") ? row["caption"] : row["captions"];
    for (const auto& c : field.is_array() ? field : nlohmann::json::array({field})) {
      MSMEDCAP_CHECK(c.is_string(), path, ":", n, ": captions must be strings");
      texts.push_back(c.get<std::string>());
    }
  }
  if (clean)
    for (auto& t : texts) t = data::clean_caption(t);
  MSMEDCAP_CHECK(!texts.empty(), path, ": the corpus has no text");
  return texts;
}

}  // namespace

void register_train_tokenizer(CLI::App& app, const GlobalOptions& globals) {
  struct Options {
    std::string input, out, kind = "sentencepiece", model_type = "bpe";
    int64_t vocab_size = 8000;
    double character_coverage = 1.0;
    bool clean = false;
  };
  auto o = std::make_shared<Options>();
  auto* cmd = app.add_subcommand("train-tokenizer", "train a tokenizer on a caption corpus");
  cmd->add_option("--input", o->input, "text file (one caption per line) or JSONL dataset (caption/captions fields)")
      ->required()
      ->check(CLI::ExistingFile);
  cmd->add_option("--out", o->out, "output folder: tokenizer.model (sentencepiece) or vocab.txt (wordpiece)")
      ->required();
  cmd->add_option("--kind", o->kind,
                  "sentencepiece (LLaMA-style, for the decoder) or wordpiece (BERT-style, for the Q-Formers)")
      ->check(CLI::IsMember({"sentencepiece", "wordpiece"}));
  cmd->add_option("--vocab-size", o->vocab_size, "vocabulary size")->check(CLI::Range(16, 1000000));
  cmd->add_option("--model-type", o->model_type, "sentencepiece: bpe or unigram")
      ->check(CLI::IsMember({"bpe", "unigram"}));
  cmd->add_option("--character-coverage", o->character_coverage, "sentencepiece: share of characters covered")
      ->check(CLI::Range(0.5, 1.0));
  cmd->add_flag("--clean", o->clean,
                "apply LAVIS's caption cleaning first (what training sees with train.clean_captions)");
  cmd->callback([o, &globals] {
    if (!globals.log_level.empty()) core::init_logging(globals.log_level);
    const auto texts = read_corpus(o->input, o->clean);
    std::filesystem::create_directories(o->out);
    if (o->kind == "wordpiece") {
      const auto vocab = data::build_wordpiece_vocab(texts, o->vocab_size);
      std::string body;
      for (const auto& t : vocab) body += t + "\n";
      core::write_file_atomic(o->out + "/vocab.txt", body);
      core::log_info("train-tokenizer", "{}/vocab.txt: {} tokens from {} texts", o->out, vocab.size(), texts.size());
      return;
    }
    MSMEDCAP_CHECK(o->out.find(' ') == std::string::npos,
                   "train-tokenizer: paths with spaces are not supported by SentencePiece's argument parser");
    const std::string corpus = o->out + "/.corpus.txt";
    {
      std::string body;
      for (const auto& t : texts) body += t + "\n";
      core::write_file_atomic(corpus, body);
    }
    // LLaMA-style: identity normalisation (so "\n" stays a byte token and can end a caption),
    // whitespace kept, a dummy prefix, byte fallback, digits split, ids 0..3 = <unk> <s> </s> <pad>.
    const std::string prefix = o->out + "/tokenizer";
    const std::string args = "--input=" + corpus + " --model_prefix=" + prefix +
                             " --vocab_size=" + std::to_string(o->vocab_size) + " --model_type=" + o->model_type +
                             " --character_coverage=" + std::to_string(o->character_coverage) +
                             " --normalization_rule_name=identity --remove_extra_whitespaces=false"
                             " --add_dummy_prefix=true --allow_whitespace_only_pieces=true"
                             " --byte_fallback=true --split_digits=true --unk_id=0 --bos_id=1 --eos_id=2 --pad_id=3"
                             " --hard_vocab_limit=false --minloglevel=2";
    try {
      data::SentencePieceTokenizer::train(args);
    } catch (...) {
      std::filesystem::remove(corpus);
      throw;
    }
    std::filesystem::remove(corpus);
    const data::SentencePieceTokenizer check(prefix + ".model");
    core::log_info("train-tokenizer", "{}.model: {} pieces from {} texts", prefix, check.vocab_size(), texts.size());
  });
}

}  // namespace msmedcap::cli
