// Tokenizer ids against the goldens of tests/golden/make_tokenizer_golden.py (an independent
// Python implementation of HF's BertTokenizer and GPT2Tokenizer, with the `regex` module).
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <filesystem>
#include <sstream>

#include <unicode/uchar.h>

#include "msmedcap/core/check.h"
#include "msmedcap/data/bpe.h"
#include "msmedcap/data/tokenizer.h"
#include "msmedcap/data/unicode.h"
#include "msmedcap/data/wordpiece.h"
#include "test_utils.h"

namespace msmedcap {
namespace {

nlohmann::json goldens() {
  return nlohmann::json::parse(testing::read_text(testing::data_path("tokenizers/goldens.json")));
}

TEST(Unicode, OwnAsciiTableEqualsIcu) {
  // A build without ICU answers ASCII from our own table (data/unicode.h): checked here against
  // ICU itself for every ASCII code point.
  static const char* const kIcuNames[] = {"Cn", "Lu", "Ll", "Lt", "Lm", "Lo", "Mn", "Me", "Mc", "Nd",
                                          "Nl", "No", "Zs", "Zl", "Zp", "Cc", "Cf", "Co", "Cs", "Pd",
                                          "Ps", "Pe", "Pc", "Po", "Sm", "Sc", "Sk", "So", "Pi", "Pf"};
  for (char32_t c = 0; c < 0x80; ++c) {
    const auto u = static_cast<UChar32>(c);
    EXPECT_EQ(std::string(data::unicode::detail::ascii_category(c)), kIcuNames[u_charType(u)]) << int(c);
    EXPECT_EQ(data::unicode::detail::ascii_space(c), u_isUWhiteSpace(u) != 0) << int(c);
    EXPECT_EQ(data::unicode::to_lower(std::u32string(1, c)), std::u32string(1, static_cast<char32_t>(u_tolower(u))))
        << int(c);
  }
  // Beyond ASCII the answers are ICU's: a non-ASCII letter, number and space.
  EXPECT_STREQ(data::unicode::category(U'\u00e9'), "Ll");
  EXPECT_TRUE(data::unicode::is_number(U'\u0663'));
  EXPECT_TRUE(data::unicode::is_space(U'\u3000'));
  EXPECT_EQ(data::unicode::nfd(U"\u00e9"), U"e\u0301");
}

TEST(TokenizerGolden, WordPieceIdsEqualBertTokenizer) {
  const data::WordPieceTokenizer tok(testing::data_path("tokenizers/bert/vocab.txt"));
  int checked = 0;
  for (const auto& g : goldens()) {
    EXPECT_EQ(tok.encode(g["text"].get<std::string>()), g["wordpiece"].get<std::vector<int64_t>>()) << g["text"];
    ++checked;
  }
  EXPECT_EQ(checked, 22);
  EXPECT_EQ(tok.dec_id(), tok.vocab_size() - 1);  // [DEC] appended after the vocabulary
  EXPECT_EQ(tok.bos_id(), tok.dec_id());
  EXPECT_EQ(tok.eos_id(), tok.sep_id());
}

TEST(TokenizerGolden, BpeIdsPretokensAndDecodeEqualGpt2Tokenizer) {
  const data::BpeTokenizer tok(testing::data_path("tokenizers/opt/vocab.json"),
                               testing::data_path("tokenizers/opt/merges.txt"));
  for (const auto& g : goldens()) {
    const std::string text = g["text"];
    EXPECT_EQ(tok.encode(text), g["bpe"].get<std::vector<int64_t>>()) << text;
    std::vector<std::string> pre;
    for (const auto& p : data::BpeTokenizer::pretokenize(data::unicode::decode_utf8(text)))
      pre.push_back(data::unicode::encode_utf8(p));
    EXPECT_EQ(pre, g["bpe_pretokens"].get<std::vector<std::string>>()) << text;
    EXPECT_EQ(tok.decode(g["bpe"].get<std::vector<int64_t>>()), g["bpe_decoded"].get<std::string>()) << text;
  }
  EXPECT_EQ(tok.bos_id(), 2);  // OPT: </s> first
  EXPECT_EQ(tok.pad_id(), 1);
}

TEST(TokenizerGolden, WordPieceDecodeJoinsContinuations) {
  const data::WordPieceTokenizer tok(testing::data_path("tokenizers/bert/vocab.txt"));
  const auto ids = tok.encode("Chest radiograph showing a small nodule.");
  EXPECT_EQ(tok.decode(ids), "chest radiograph showing a small nodule.");
  EXPECT_EQ(tok.decode(ids, false).rfind("[CLS] chest", 0), 0u);
}

TEST(TokenizerGolden, LoadTokenizerPicksTheKindAndNamesBadFiles) {
  EXPECT_EQ(data::load_tokenizer(testing::data_path("tokenizers/bert"))->kind(), "wordpiece");
  EXPECT_EQ(data::load_tokenizer(testing::data_path("tokenizers/opt"))->kind(), "bpe");
  testing::TempDir dir;
  try {
    data::load_tokenizer(dir.path());
    FAIL() << "an empty folder must be refused";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(dir.path()), std::string::npos);
  }
  testing::write_text(dir.file("vocab.json"), "{\"a\": 0, \"b\": \"x\"}");
  testing::write_text(dir.file("merges.txt"), "a b\n");
  EXPECT_THROW(data::load_tokenizer(dir.path()), Error);
  testing::write_text(dir.file("vocab.json"), "{\"a\": 0, \"b\": 1}");
  testing::write_text(dir.file("merges.txt"), "#version: 0.2\na b c\n");
  try {
    data::load_tokenizer(dir.path());
    FAIL() << "a malformed merges line must be refused";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("merges.txt:2"), std::string::npos) << e.what();
  }
  testing::write_text(dir.file("vocab.txt"), "[PAD]\n[CLS]\n[SEP]\n");  // no [UNK]
  EXPECT_THROW(data::load_tokenizer(dir.path()), Error);
}

TEST(TokenizerGolden, TokenizerJsonAloneGivesTheSameIds) {
  // Hub folders may carry only the tokenizers library's tokenizer.json: the BPE (both merge
  // spellings) and WordPiece models in it give the golden ids of the classic files.
  testing::TempDir dir;
  const auto vocab = nlohmann::json::parse(testing::read_text(testing::data_path("tokenizers/opt/vocab.json")));
  std::istringstream merges_in(testing::read_text(testing::data_path("tokenizers/opt/merges.txt")));
  nlohmann::json merges_text = nlohmann::json::array(), merges_pairs = nlohmann::json::array();
  std::string line;
  while (std::getline(merges_in, line)) {
    if (line.empty() || line.rfind("#version", 0) == 0) continue;
    const auto sp = line.find(' ');
    merges_text.push_back(line);
    merges_pairs.push_back({line.substr(0, sp), line.substr(sp + 1)});
  }
  std::vector<std::string> bert_tokens;
  std::istringstream bert_in(testing::read_text(testing::data_path("tokenizers/bert/vocab.txt")));
  nlohmann::json bert_vocab = nlohmann::json::object();
  while (std::getline(bert_in, line)) bert_vocab[line] = static_cast<int64_t>(bert_vocab.size());
  for (const auto& [name, json] :
       {std::pair<std::string, nlohmann::json>{"bpe-text",
                                               {{"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", merges_text}}},
                                                {"pre_tokenizer", {{"type", "ByteLevel"}}}}},
        {"bpe-pairs",
         {{"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", merges_pairs}}},
          {"pre_tokenizer", {{"type", "ByteLevel"}}}}},
        {"wordpiece", {{"model", {{"type", "WordPiece"}, {"vocab", bert_vocab}}}}}}) {
    std::filesystem::create_directories(dir.file(name));
    testing::write_text(dir.file(name + "/tokenizer.json"), json.dump());
    const auto tok = data::load_tokenizer(dir.file(name));
    EXPECT_EQ(tok->kind(), name == "wordpiece" ? "wordpiece" : "bpe");
    for (const auto& g : goldens()) {
      EXPECT_EQ(tok->encode(g["text"].get<std::string>()),
                g[name == "wordpiece" ? "wordpiece" : "bpe"].get<std::vector<int64_t>>())
          << name << ": " << g["text"];
    }
  }
  // A model this reader does not know is refused by name.
  testing::write_text(dir.file("unigram.json"), R"({"model": {"type": "Unigram", "vocab": {}}})");
  std::filesystem::create_directories(dir.file("unigram"));
  std::filesystem::rename(dir.file("unigram.json"), dir.file("unigram/tokenizer.json"));
  try {
    data::load_tokenizer(dir.file("unigram"));
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("model type 'Unigram' is not supported"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace msmedcap
