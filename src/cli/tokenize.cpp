// msmedcap tokenize --tokenizer PATH [--no-special] [--tokens] TEXT...: ids of texts, one JSON
// line per text.
#include <iostream>

#include <nlohmann/json.hpp>

#include "commands.h"
#include "msmedcap/core/logging.h"
#include "msmedcap/data/tokenizer.h"

namespace msmedcap::cli {

void register_tokenize(CLI::App& app, const GlobalOptions& globals) {
  struct Options {
    std::string tokenizer;
    std::vector<std::string> texts;
    bool no_special = false, tokens = false, no_dec = false, no_bos = false;
  };
  auto o = std::make_shared<Options>();
  auto* cmd = app.add_subcommand("tokenize", "print the token ids of texts (one JSON line each)");
  cmd->add_option("--tokenizer", o->tokenizer, "vocab.txt, vocab.json (+ merges.txt), a .model, or an HF folder")
      ->required();
  cmd->add_option("texts", o->texts, "texts to encode")->required();
  cmd->add_flag("--no-special", o->no_special, "do not add [CLS]/[SEP], </s> or <s>");
  cmd->add_flag("--tokens", o->tokens, "also print the token strings");
  cmd->add_flag("--no-dec", o->no_dec, "WordPiece: do not add [DEC] to the vocabulary");
  cmd->add_flag("--no-bos", o->no_bos, "BPE: do not prepend the bos token (GPT-2)");
  cmd->callback([o, &globals] {
    if (!globals.log_level.empty()) core::init_logging(globals.log_level);
    data::TokenizerOptions options;
    options.add_dec_token = !o->no_dec;
    options.add_bos = !o->no_bos;
    const auto tok = data::load_tokenizer(o->tokenizer, options);
    for (const auto& text : o->texts) {
      nlohmann::json line = {{"text", text}, {"ids", tok->encode(text, !o->no_special)}};
      if (o->tokens) line["tokens"] = tok->tokenize(text);
      std::cout << line.dump() << "\n";
    }
  });
}

}  // namespace msmedcap::cli
