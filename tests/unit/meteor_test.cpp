// METEOR 1.5 (docs/DATA.md, "METEOR") on hand-worked alignments and the invariants of docs/DATA.md, "Invariants the
// tests use". Expected values are written as Meteor's formula over counts worked out by hand:
//   P = sum_m w_m (0.75 content + 0.25 function matches) / (0.75 content + 0.25 function words)
//   Fmean = 1 / (0.15 / P + 0.85 / R), frag = chunks / mean matched words, score = Fmean (1 - 0.6 frag^0.2).
#include <gtest/gtest.h>

#include <cmath>

#include "msmedcap/metrics/meteor.h"
#include "msmedcap/metrics/wordnet.h"

namespace msmedcap::metrics {
namespace {

double fmean(double p, double r) { return 1.0 / (0.15 / p + 0.85 / r); }
double meteor(double p, double r, double chunks, double matched) {
  return fmean(p, r) * (1 - 0.6 * std::pow(chunks / matched, 0.2));
}

const Meteor& full() {
  static const Meteor m;  // exact, stem, synonym (Debian's WordNet)
  return m;
}

TEST(Meteor, UsesExactStemAndSynonymModules) { EXPECT_EQ(full().modules(), "exact stem synonym"); }

TEST(Meteor, IdenticalHypothesesScoreOneAndEmptyOnesZero) {
  const std::vector<Item> same = {{"a small nodule in the left lung", {"a small nodule in the left lung"}},
                                  {"large effusion on the right side", {"large effusion on the right side"}},
                                  {"no acute finding in the chest", {"no acute finding in the chest"}}};
  const auto s = full().score(same);
  EXPECT_DOUBLE_EQ(s.corpus, 1.0);
  for (double v : s.per_item) EXPECT_DOUBLE_EQ(v, 1.0);
  const auto e = full().score({{"", {"a mass in the lung"}}, {"", {"normal chest"}}});
  EXPECT_EQ(e.corpus, 0.0);
  EXPECT_EQ(e.per_item, (std::vector<double>{0.0, 0.0}));
  EXPECT_EQ(full().score({}).corpus, 0.0);
}

TEST(Meteor, StemMatchesCountSixTenths) {
  // chest radiograph effusion: exact; shows ~ showing: stem (listed before synonym, equal search
  // keys, so kept); "pleural" unmatched splits the alignment into 2 chunks. No function words.
  const auto s = full().score({{"chest radiograph shows effusion", {"chest radiograph showing pleural effusion"}}});
  const double w = 3 * 0.75 + 0.6 * 0.75;
  EXPECT_NEAR(s.corpus, meteor(w / (4 * 0.75), w / (5 * 0.75), 2, 4), 1e-12);
}

TEST(Meteor, SynonymsFromWordNetAndTheirAbsence) {
  // large ~ big share a WordNet adjective synset: all words matched in one chunk, frag 0.
  const Item item{"large mass", {"big mass"}};
  EXPECT_NEAR(full().score({item}).corpus, (0.8 * 0.75 + 0.75) / 1.5, 1e-12);
  MeteorOptions no_synonyms;
  no_synonyms.wordnet_dir = "";
  const Meteor exact_stem(no_synonyms);
  EXPECT_EQ(exact_stem.modules(), "exact stem");
  EXPECT_NEAR(exact_stem.score({item}).corpus, meteor(0.5, 0.5, 1, 1), 1e-12);
  // Inflected forms reach their base's synsets: "mice" -> "mouse" through WordNet's exception
  // list (the stems "mice" and "mous" differ), "masses" -> "mass" through its suffix rules.
  EXPECT_NEAR(full().score({{"mice", {"mouse"}}}).corpus, 0.8, 1e-12);
  const WordNetSynonyms wordnet(MeteorOptions::kDefaultWordNetDir);
  const auto mass = wordnet.synsets("mass");
  const auto masses = wordnet.synsets("masses");
  ASSERT_FALSE(mass.empty());
  for (int64_t id : mass) EXPECT_TRUE(masses.count(id)) << id;
}

TEST(Meteor, FunctionWordsWeighQuarter) {
  // "the" and "a" are function words and unmatched; "mass" matched: P = R = 0.75 / (0.75 + 0.25).
  EXPECT_NEAR(full().score({{"the mass", {"a mass"}}}).corpus, meteor(0.75, 0.75, 1, 1), 1e-12);
}

TEST(Meteor, AlignmentPrefersFewerChunks) {
  // "mass" can align to hypothesis word 0 or 2; after "left" (word 1), word 2 keeps one chunk.
  const auto s = full().score({{"mass left mass", {"left mass"}}});
  EXPECT_NEAR(s.corpus, meteor(2.0 / 3, 1.0, 1, 2), 1e-12);
}

TEST(Meteor, BestReferencePerItemAndCorpusFromSummedStatistics) {
  const auto best = full().score({{"left lung mass", {"normal study", "left lung mass"}}});
  EXPECT_DOUBLE_EQ(best.corpus, 1.0);
  // Corpus METEOR is not the mean of the per-item scores (docs/DATA.md, invariants).
  const auto s = full().score({{"left lung mass", {"left lung mass"}}, {"mass", {"right kidney cyst"}}});
  EXPECT_DOUBLE_EQ(s.per_item[0], 1.0);
  EXPECT_DOUBLE_EQ(s.per_item[1], 0.0);
  // Summed: hypotheses 4 words and references 6, 3 matched (content words); the perfect
  // segment's chunk is not added and the second has none: frag 0, so the score is Fmean.
  EXPECT_NEAR(s.corpus, fmean(3.0 / 4, 3.0 / 6), 1e-12);
  EXPECT_NE(s.corpus, (s.per_item[0] + s.per_item[1]) / 2);
}

TEST(Meteor, NormaliserFollowsMeteorNorm) {
  // Java's replaceAll resumes after each match: "1-t" then "2-w" in the first, only "a-b" in the
  // second.
  EXPECT_EQ(Meteor::normalize("t1-t2-weighted image"), "t1 t2 weighted image");
  EXPECT_EQ(Meteor::normalize("a-b-c"), "a b-c");
  EXPECT_EQ(Meteor::normalize("u.s. based"), "us based");
  EXPECT_EQ(Meteor::normalize("the end."), "the end .");
  EXPECT_EQ(Meteor::normalize("fig. 2"), "fig . 2");
  EXPECT_EQ(Meteor::normalize("fig. a"), "fig. a");
  EXPECT_EQ(Meteor::normalize("x...y"), "x ... y");
  EXPECT_EQ(Meteor::normalize("1,000 a,b"), "1,000 a , b");
  EXPECT_EQ(Meteor::normalize("don't stop"), "don 't stop");
  EXPECT_EQ(Meteor::normalize("-lrb- a -rrb- 50% x/y"), "-lrb- a -rrb- 50 % x / y");
  EXPECT_EQ(Meteor::normalize("?! Mass"), "? ! mass");
}

TEST(Meteor, MissingResourcesAreNamed) {
  MeteorOptions bad;
  bad.wordnet_dir = "/nonexistent/wordnet";
  try {
    Meteor m(bad);
    FAIL() << "no error";
  } catch (const std::exception& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/wordnet/index.noun"), std::string::npos) << e.what();
  }
  MeteorOptions words;
  words.function_words_file = "/nonexistent/english.words";
  EXPECT_THROW(Meteor{words}, std::exception);
}

}  // namespace
}  // namespace msmedcap::metrics
