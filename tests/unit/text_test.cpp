// Caption cleaning against hand-worked LAVIS pre_caption results.
#include <gtest/gtest.h>

#include <ATen/ATen.h>

#include <algorithm>

#include "msmedcap/core/check.h"
#include "msmedcap/data/text.h"
#include "msmedcap/data/text_batch.h"
#include "msmedcap/data/tokenizer.h"
#include "msmedcap/data/unicode.h"
#include "msmedcap/data/wordpiece.h"
#include "test_utils.h"

namespace msmedcap::data {
namespace {

TEST(Unicode, AsciiInEveryBuildTheRestThroughIcu) {
  // ASCII text needs no ICU; beyond it a build without ICU names what is missing.
  EXPECT_EQ(unicode::to_lower(U"Left UPPER Lobe, 2 cm"), U"left upper lobe, 2 cm");
  EXPECT_EQ(unicode::nfd(U"plain"), U"plain");
  EXPECT_TRUE(unicode::is_letter(U'q') && unicode::is_number(U'7') && unicode::is_space(U'\t'));
  EXPECT_STREQ(unicode::category(U'('), "Ps");
  if (core::built_with(core::Component::kIcu)) {
    EXPECT_EQ(unicode::to_lower(U"\u00c9DEME"), U"\u00e9deme");
  } else {
    try {
      (void)unicode::to_lower(U"\u00c9DEME");
      ADD_FAILURE() << "no error without ICU";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("built without icu (Unicode facts of U+00C9"), std::string::npos)
          << e.what();
    }
  }
}

TEST(CleanCaption, MatchesLavisPreCaption) {
  // lower -> ". ( ) :" become spaces -> whitespace runs collapse -> strip.
  EXPECT_EQ(clean_caption("Axial MRI (coronal view)."), "axial mri coronal view");
  EXPECT_EQ(clean_caption("  CT: large mass;  LEFT kidney!!  "), "ct large mass left kidney");
  EXPECT_EQ(clean_caption("T2-weighted image, \"hyperintense\" ~ lesion*"), "t2-weighted image, hyperintense lesion");
  EXPECT_EQ(clean_caption("...:;"), "");
}

TEST(CleanCaption, TruncatesToMaxWordsAndPrependsThePrompt) {
  CaptionCleaning options;
  options.max_words = 3;
  options.prompt = "a photo of ";
  EXPECT_EQ(clean_caption("One two  three four five.", options), "a photo of one two three");
  options.max_words = 0;
  EXPECT_EQ(clean_caption("One two three four five.", options), "a photo of one two three four five");
}

TEST(CleanCaption, EveryStepCanBeTurnedOff) {
  CaptionCleaning options;
  options.lowercase = false;
  options.strip_chars = "";
  EXPECT_EQ(clean_caption(" Keep (Case). ", options), "Keep (Case).");
  // Non-ASCII bytes pass through unchanged (Python would lowercase "É"; documented difference).
  EXPECT_EQ(clean_caption("Éclat “quoted”"), "Éclat “quoted”");
}

TEST(TextBatch, QFormerRowsKeepSepWhenCutAndPadWithZero) {
  const auto tok = load_tokenizer(testing::data_path("tokenizers/bert"));
  const auto full = tok->encode("a small nodule in the left upper lobe", true);
  ASSERT_GT(full.size(), 6u);
  const auto b = qformer_text_batch(*tok, {"a small nodule in the left upper lobe", "a mass"}, 6);
  ASSERT_EQ(b.ids.sizes(), (at::IntArrayRef{2, 6}));
  for (int64_t t = 0; t < 5; ++t) EXPECT_EQ(b.ids[0][t].item<int64_t>(), full[static_cast<size_t>(t)]);
  EXPECT_EQ(b.ids[0][5].item<int64_t>(), full.back());  // [SEP] kept last
  const auto short_ids = tok->encode("a mass", true);
  EXPECT_EQ(b.mask[1].sum().item<int64_t>(), static_cast<int64_t>(short_ids.size()));
  EXPECT_EQ(b.ids[1][5].item<int64_t>(), 0);
}

TEST(TextBatch, DecoderRowsCarryPromptLengthsAndTheEndText) {
  const auto tok = load_tokenizer(testing::data_path("tokenizers/opt"));
  const auto b = decoder_text_batch(*tok, {"a mass", "a small nodule"}, "a photo of ", "\n", 64);
  const auto expect = tok->encode("a photo of a small nodule\n", true);
  ASSERT_EQ(b.ids.size(1), static_cast<int64_t>(expect.size()));
  for (size_t t = 0; t < expect.size(); ++t) EXPECT_EQ(b.ids[1][static_cast<int64_t>(t)].item<int64_t>(), expect[t]);
  const auto prompt = static_cast<int64_t>(tok->encode("a photo of ", true).size());
  EXPECT_EQ(b.prompt_lengths, (std::vector<int64_t>{prompt, prompt}));
  EXPECT_EQ(b.ids[0][b.ids.size(1) - 1].item<int64_t>(), tok->pad_id());  // right padding
  EXPECT_TRUE(decoder_text_batch(*tok, {"x"}, "", "\n", 64).prompt_lengths == std::vector<int64_t>{0});
  EXPECT_EQ(decoder_text_batch(*tok, {"a small nodule"}, "", "\n", 3).ids.size(1), 3);
}

}  // namespace
}  // namespace msmedcap::data

namespace msmedcap::data {
namespace {

TEST(WordPieceVocab, SpecialsThenCharactersThenWordsByFrequency) {
  const std::vector<std::string> corpus = {"Left lobe, left lobe.", "Right lobe", "left"};
  const auto vocab = build_wordpiece_vocab(corpus, 40);
  ASSERT_GE(vocab.size(), 6u);
  EXPECT_EQ(std::vector<std::string>(vocab.begin(), vocab.begin() + 6),
            (std::vector<std::string>{"[PAD]", "[unused0]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"}));
  // Characters: l e f t o b r i g h , . (12), each alone and as a continuation.
  const auto at = [&](const std::string& t) { return std::find(vocab.begin(), vocab.end(), t) - vocab.begin(); };
  EXPECT_LT(at("l"), at("##l"));
  EXPECT_LT(at("##."), at("left"));
  EXPECT_LT(at("left"), at("lobe"));       // 3 vs 3 occurrences: alphabetical
  EXPECT_LT(at("lobe"), at("right"));      // 3 vs 1
  EXPECT_EQ(vocab.size(), 6u + 24u + 3u);  // every word fits
  const WordPieceTokenizer tok(vocab, TokenizerOptions{}, "built");
  EXPECT_EQ(tok.tokenize("left leftie"), (std::vector<std::string>{"left", "left", "##i", "##e"}));
  // Only the most frequent words when the size is short; too small for the characters is an error.
  const auto short_vocab = build_wordpiece_vocab(corpus, 6 + 24 + 1);
  EXPECT_EQ(short_vocab.back(), "left");
  EXPECT_THROW(build_wordpiece_vocab(corpus, 20), Error);
}

}  // namespace
}  // namespace msmedcap::data
