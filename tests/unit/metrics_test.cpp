// Captioning metrics against hand-worked pycocoevalcap values and the invariants of
// docs/DATA.md, "Invariants the tests use".
#include <gtest/gtest.h>

#include <cmath>

#include "msmedcap/core/check.h"
#include "msmedcap/metrics/evaluate.h"
#include "msmedcap/metrics/ptb_tokenizer.h"
#include "msmedcap/metrics/scorer.h"
#include "test_utils.h"

namespace msmedcap::metrics {
namespace {

TEST(Metrics, IdenticalHypothesesScoreOneAndCiderTen) {
  const std::vector<Item> items = {{"a small nodule in the left lung", {"a small nodule in the left lung"}},
                                   {"large effusion on the right side", {"large effusion on the right side"}},
                                   {"no acute finding in the chest", {"no acute finding in the chest"}}};
  const auto b = bleu(items);
  for (int k = 0; k < 4; ++k) EXPECT_NEAR(b[k].corpus, 1.0, 1e-8) << k;
  EXPECT_DOUBLE_EQ(rouge_l(items).corpus, 1.0);
  EXPECT_NEAR(cider_d(items).corpus, 10.0, 1e-9);
}

TEST(Metrics, OneItemHasCiderZeroAndEmptyHypothesesScoreZero) {
  EXPECT_DOUBLE_EQ(cider_d({{"a mass", {"a mass"}}}).corpus, 0.0);
  const std::vector<Item> empty = {{"", {"a mass in the lung"}}, {"", {"normal chest"}}};
  for (const auto& s : bleu(empty)) EXPECT_EQ(s.corpus, 0.0);
  EXPECT_EQ(rouge_l(empty).corpus, 0.0);
  EXPECT_EQ(cider_d(empty).corpus, 0.0);
  EXPECT_EQ(split_space(""), (std::vector<std::string>{""}));
}

TEST(Metrics, BleuAndRougeByHand) {
  // Unigrams 5/6, bigrams 3/5, trigrams 1/4, 4-grams 0/3; equal lengths: no brevity penalty.
  const std::vector<Item> items = {{"the cat sat on the mat", {"the cat is on the mat"}}};
  const auto b = bleu(items);
  EXPECT_NEAR(b[0].corpus, 5.0 / 6, 1e-9);
  EXPECT_NEAR(b[1].corpus, std::sqrt(0.5), 1e-9);
  EXPECT_NEAR(b[2].corpus, 0.5, 1e-9);
  EXPECT_NEAR(b[3].corpus, std::pow(0.125 * (1e-15 / (3 + 1e-9)), 0.25), 1e-12);
  // LCS "the cat on the mat" = 5 of 6 both ways: F = P = R = 5/6.
  EXPECT_NEAR(rouge_l(items).corpus, 5.0 / 6, 1e-12);
}

TEST(Metrics, BleuClosestReferenceTieGoesToTheShorter) {
  // Lengths 3 and 5 are both 1 away from 4: the shorter makes no brevity penalty.
  const auto b = bleu({{"a b c d", {"a b c", "a b c d e"}}});
  EXPECT_NEAR(b[0].corpus, 1.0, 1e-8);
  // A hypothesis shorter than its only reference pays exp(1 - r/c).
  const auto short_hyp = bleu({{"a b", {"a b c d"}}});
  EXPECT_NEAR(short_hyp[0].corpus, std::exp(1 - 2.0), 1e-8);
}

TEST(Metrics, RougeMaxesPrecisionAndRecallOverReferencesIndependently) {
  // Precision is best against "x a b c y z" (LCS 3 of 3 hypothesis tokens), recall against
  // "a b" (LCS 2 of 2 reference tokens): each is maxed on its own, so both are 1.
  const auto s = rouge_l({{"a b c", {"a b", "x a b c y z"}}});
  const double p = 1.0, r = 1.0;
  EXPECT_NEAR(s.corpus, (1 + 1.44) * p * r / (r + 1.44 * p), 1e-12);
}

TEST(Metrics, CiderUsesReferenceDocumentFrequenciesAndClipping) {
  // Two items: a word in both items' references has idf 0 and counts for nothing.
  const std::vector<Item> items = {{"lung mass", {"lung mass"}}, {"lung cyst", {"lung nodule"}}};
  const auto s = cider_d(items);
  // Item 1: "lung" (idf 0) and "mass" (idf log 2) match exactly, as does "lung mass": 1-gram
  // and 2-gram cosines are 1; 3- and 4-grams are empty (0). Score 10 * (1 + 1 + 0 + 0) / 4.
  EXPECT_NEAR(s.per_item[0], 5.0, 1e-9);
  // Item 2 shares only "lung" (idf 0): 0.
  EXPECT_NEAR(s.per_item[1], 0.0, 1e-12);
  EXPECT_NEAR(s.corpus, 2.5, 1e-9);
}

TEST(PtbTokenizer, DocumentedExampleAndQuirks) {
  // docs/DATA.md, "Tokenisation"'s example (CoreNLP 3.4.1 with -lowerCase, then the punctuation
  // filter).
  EXPECT_EQ(ptb_tokenize("Axial CT [arrow] (see Fig. 1A); \u201cstring\u201d \u2014 x"),
            "axial ct -lsb- arrow -rsb- -lrb- see fig. 1a -rrb- string x");
  EXPECT_EQ(ptb_tokenize("A small nodule in the left upper lobe."), "a small nodule in the left upper lobe");
  EXPECT_EQ(ptb_tokenize("T2-weighted MRI, e.g. axial: 3.5 cm mass!"), "t2-weighted mri e.g. axial 3.5 cm mass");
  EXPECT_EQ(ptb_tokenize("The patient's film doesn't show it"), "the patient 's film does n't show it");
  EXPECT_EQ(ptb_tokenize("cannot exclude \"mass\" ... really?!"), "can not exclude mass really ?!");
  EXPECT_EQ(ptb_tokenize("no. 3 and/or {x}"), "no. 3 and/or -lcb- x -rcb-");
  EXPECT_EQ(ptb_tokenize(""), "");
}

}  // namespace
}  // namespace msmedcap::metrics

namespace msmedcap::metrics {
namespace {

TEST(Evaluate, GroupsScoreEachSubsetOnItsOwn) {
  testing::TempDir dir;
  testing::write_text(dir.file("ref.jsonl"),
                      "{\"id\": \"a\", \"caption\": \"a small nodule in the left lobe\", \"size\": \"small\"}\n"
                      "{\"id\": \"b\", \"caption\": \"a large mass in the right lobe\", \"size\": \"large\"}\n"
                      "{\"id\": \"c\", \"caption\": \"a small cavity in the right lobe\", \"size\": \"small\"}\n"
                      "{\"id\": \"d\", \"caption\": \"no abnormality\", \"size\": \"\"}\n");
  const std::map<std::string, std::string> pred = {{"a", "a small nodule in the left lobe"},
                                                   {"b", "a small mass in the left lobe"},
                                                   {"c", "a large cavity in the right lobe"},
                                                   {"d", "no abnormality"}};
  const auto refs = read_references(dir.file("ref.jsonl"));
  const auto size = read_reference_field(dir.file("ref.jsonl"), "size");
  EXPECT_EQ(size.at("d"), "(none)");
  const auto groups = evaluate_groups(pred, refs, size);
  ASSERT_EQ(groups.size(), 3u);
  EXPECT_EQ(groups.at("small").ids, (std::vector<std::string>{"a", "c"}));
  // Each group equals evaluate() on that subset alone.
  const auto small = evaluate({{"a", pred.at("a")}, {"c", pred.at("c")}}, {{"a", refs.at("a")}, {"c", refs.at("c")}});
  for (const auto& [name, value] : small.corpus) EXPECT_DOUBLE_EQ(groups.at("small").corpus.at(name), value) << name;
  EXPECT_NEAR(groups.at("(none)").corpus.at("Bleu_1"), 1.0, 1e-6);  // pycocoevalcap's epsilon
  // A field an id's lines disagree on is an error naming the line.
  testing::write_text(dir.file("bad.jsonl"),
                      "{\"id\": 1, \"caption\": \"x\", \"size\": \"small\"}\n"
                      "{\"id\": 1, \"caption\": \"y\", \"size\": \"large\"}\n");
  try {
    read_reference_field(dir.file("bad.jsonl"), "size");
    FAIL() << "disagreeing lines were accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("bad.jsonl:2"), std::string::npos) << e.what();
  }
}

TEST(Evaluate, SummaryHasEveryMetricNameAndRoundTripsThroughJson) {
  const std::map<std::string, std::string> pred = {{"a", "a small nodule"}, {"b", "a large mass"}};
  const std::map<std::string, std::vector<std::string>> refs = {{"a", {"a small nodule"}}, {"b", {"a small mass"}}};
  const auto ev = evaluate(pred, refs);  // no METEOR scorer
  EvaluationSummary summary;
  summary.corpus = scores_of(ev);
  EXPECT_EQ(summary.corpus.n, 2);
  ASSERT_EQ(summary.corpus.values.size(), metric_names().size());
  for (const auto& name : metric_names()) {
    ASSERT_TRUE(summary.corpus.values.count(name)) << name;
    EXPECT_EQ(summary.corpus.values.at(name).has_value(), name != "METEOR") << name;
    if (name != "METEOR") EXPECT_DOUBLE_EQ(*summary.corpus.values.at(name), ev.corpus.at(name)) << name;
  }
  summary.groups["size"]["small"] = scores_of(evaluate({{"a", pred.at("a")}}, {{"a", refs.at("a")}}));
  const config::Json j = to_json(summary);
  EXPECT_TRUE(j.at("METEOR").is_null());
  EXPECT_EQ(j.at("n"), 2);
  EXPECT_EQ(j.at("groups").at("size").at("small").at("n"), 1);
  const auto back = evaluation_summary_from_json(j, "eval.json");
  EXPECT_EQ(to_json(back), j);
  EXPECT_EQ(back.groups.at("size").at("small").n, 1);
  // A file from before "n" still reads; a value that is not a score is named with its key.
  EXPECT_EQ(evaluation_summary_from_json(config::Json::parse(R"({"CIDEr": 1.5})"), "old.json").corpus.n, 0);
  const std::string bad = testing::error_of([] {
    evaluation_summary_from_json(config::Json::parse(R"({"groups": {"size": {"small": {"CIDEr": "high"}}}})"),
                                 "x.json");
  });
  EXPECT_NE(bad.find("x.json: /groups/size/small/CIDEr is not a score"), std::string::npos) << bad;
  EXPECT_NE(testing::error_of([] { evaluation_summary_from_json(config::Json::array(), "y.json"); }).find("y.json"),
            std::string::npos);
}

}  // namespace
}  // namespace msmedcap::metrics
