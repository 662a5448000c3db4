// The sentencepiece bridge, in the same process as LibTorch: a model trained at test time by
// Debian's spm_train, encoded here and by spm_encode (the independent reference).
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <sstream>

#include "msmedcap/core/check.h"
#include "msmedcap/data/sentencepiece.h"
#include "test_utils.h"

namespace msmedcap::data {
namespace {

using msmedcap::testing::run_command;
using msmedcap::testing::TempDir;
using msmedcap::testing::write_text;

const char* kCorpus =
    "Chest radiograph showing a small nodule in the right upper lobe.\n"
    "Axial CT of the abdomen shows a large mass in the left kidney.\n"
    "Brain MRI with a small cavity in the right frontal lobe.\n"
    "No acute cardiopulmonary abnormality.\n"
    "Chest radiograph shows bilateral pleural effusion.\n"
    "Axial CT showing calcification in the left lower lobe.\n"
    "Brain MRI T2-weighted image shows a mass in the left temporal lobe.\n"
    "Normal chest radiograph.\n";

class SentencePieceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // LibTorch is live in this process before the bridge is opened.
    ASSERT_EQ(at::ones({2}).sum().item<float>(), 2.0f);
    corpus_ = dir_.file("corpus.txt");
    std::string text;
    for (int i = 0; i < 20; ++i) text += kCorpus;
    write_text(corpus_, text);
    model_prefix_ = dir_.file("spm");
    const auto r = run_command("spm_train --input=" + corpus_ + " --model_prefix=" + model_prefix_ +
                               " --vocab_size=80 --model_type=bpe --minloglevel=2");
    ASSERT_EQ(r.exit_code, 0) << "spm_train (Debian package 'sentencepiece') failed: " << r.err;
  }

  std::vector<int32_t> reference_ids(const std::string& model, const std::string& text) {
    write_text(dir_.file("in.txt"), text + "\n");
    const auto r = run_command("spm_encode --model=" + model + " --output_format=id " + dir_.file("in.txt"));
    EXPECT_EQ(r.exit_code, 0) << r.err;
    std::istringstream in(r.out);
    std::vector<int32_t> ids;
    int32_t id;
    while (in >> id) ids.push_back(id);
    return ids;
  }

  TempDir dir_;
  std::string corpus_;
  std::string model_prefix_;
};

TEST_F(SentencePieceTest, EncodesLikeSpmEncodeAndDecodesBack) {
  SentencePieceTokenizer spm(model_prefix_ + ".model");
  EXPECT_EQ(spm.vocab_size(), 80);
  for (const std::string text : {"Chest radiograph showing a small nodule in the right upper lobe.",
                                 "A large mass in the left kidney.", "unseen words: xylophone 42"}) {
    const auto ids = spm.encode(text);
    EXPECT_FALSE(ids.empty());
    EXPECT_EQ(ids, reference_ids(model_prefix_ + ".model", text)) << text;
    if (text.find("xylophone") == std::string::npos) EXPECT_EQ(spm.decode(ids), text);
  }
}

TEST_F(SentencePieceTest, VocabularyQueriesAreConsistent) {
  SentencePieceTokenizer spm(model_prefix_ + ".model");
  EXPECT_EQ(spm.unk_id(), 0);
  EXPECT_EQ(spm.bos_id(), 1);
  EXPECT_EQ(spm.eos_id(), 2);
  EXPECT_EQ(spm.pad_id(), -1);
  for (int id = 0; id < spm.vocab_size(); ++id) EXPECT_EQ(spm.piece_to_id(spm.id_to_piece(id)), id);
  EXPECT_EQ(spm.id_to_piece(1), "<s>");
  EXPECT_THROW(spm.id_to_piece(spm.vocab_size()), Error);
  EXPECT_EQ(spm.piece_to_id("no-such-piece-here"), spm.unk_id());
}

TEST_F(SentencePieceTest, LongTextNeedsNoFixedBuffers) {
  SentencePieceTokenizer spm(model_prefix_ + ".model");
  std::string text;
  for (int i = 0; i < 200; ++i) text += "abcdefghijklmnopqrstuvwxyz0123456789 ";
  const auto ids = spm.encode(text);
  EXPECT_GT(ids.size(), text.size() / 2);
  EXPECT_EQ(ids, reference_ids(model_prefix_ + ".model", text));
}

TEST_F(SentencePieceTest, TrainsThroughTheBridge) {
  const std::string prefix = dir_.file("bridge");
  SentencePieceTokenizer::train("--input=" + corpus_ + " --model_prefix=" + prefix +
                                " --vocab_size=60 --model_type=unigram --minloglevel=2");
  SentencePieceTokenizer spm(prefix + ".model");
  EXPECT_EQ(spm.vocab_size(), 60);
  const std::string text = "Axial CT showing a mass.";
  EXPECT_EQ(spm.encode(text), reference_ids(prefix + ".model", text));
  EXPECT_THROW(SentencePieceTokenizer::train("--input=/nonexistent --model_prefix=" + prefix), Error);
}

TEST_F(SentencePieceTest, MissingOrCorruptModelNamesTheFile) {
  try {
    SentencePieceTokenizer spm("/nonexistent/tokenizer.model");
    FAIL() << "no throw";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/tokenizer.model"), std::string::npos);
  }
  write_text(dir_.file("junk.model"), "this is not a protobuf");
  EXPECT_THROW(SentencePieceTokenizer(dir_.file("junk.model")), Error);
  EXPECT_FALSE(SentencePieceTokenizer::bridge_path().empty());
}

}  // namespace
}  // namespace msmedcap::data
