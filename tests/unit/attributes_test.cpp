// Attribute metrics: the synthetic benchmark's rule file reads back every caption's own labels,
// negation, plurals, requires and implied rules, the scores against hand-counted values, and
// rule-file errors that name the key.
#include <gtest/gtest.h>

#include "msmedcap/core/check.h"
#include "msmedcap/data/synthetic.h"
#include "msmedcap/metrics/attributes.h"
#include "test_utils.h"

namespace msmedcap::metrics {
namespace {

using msmedcap::testing::TempDir;

const std::string kRules = std::string(MSMEDCAP_SOURCE_DIR) + "/configs/attributes/synthetic.json";

std::string or_none(const std::string& v) { return v.empty() ? "none" : v; }

TEST(Attributes, SyntheticRulesReadEveryCaptionsOwnLabels) {
  const AttributeRules rules = read_attribute_rules(kRules);
  const std::map<std::string, std::vector<std::string>> findings = {
      {"chest_xray", {"nodule", "mass", "effusion", "cavity", "calcification", "normal"}},
      {"axial_ct", {"nodule", "mass", "effusion", "cavity", "calcification", "normal"}},
      {"brain_mri", {"mass", "cavity", "calcification", "normal"}}};
  int64_t checked = 0;
  for (const auto& [modality, list] : findings)
    for (const auto& finding : list)
      for (const std::string size : {"small", "large"})
        for (const std::string side : {"left", "right"})
          for (const std::string zone : {"upper", "middle", "lower"})
            for (int64_t count = 1; count <= 3; ++count)
              for (uint64_t variant = 0; variant < 24; ++variant) {
                data::SynthSpec s;
                s.modality = modality;
                s.finding = finding;
                if (finding != "normal") {
                  s.size = size;
                  s.side = side;
                  s.zone = finding == "effusion" ? "lower" : zone;
                  s.count = (finding == "nodule" || finding == "calcification") ? count : 1;
                }
                const std::string caption = data::synth_caption(s, variant * 7919 + 13);
                const auto got = read_attributes(rules, caption);
                SCOPED_TRACE(caption);
                EXPECT_EQ(got.at("modality"), s.modality);
                EXPECT_EQ(got.at("finding"), s.finding);
                EXPECT_EQ(got.at("side"), or_none(s.side));
                EXPECT_EQ(got.at("zone"), or_none(s.zone));
                EXPECT_EQ(got.at("size"), or_none(s.size));
                EXPECT_EQ(got.at("count"), std::to_string(s.count));
                ++checked;
              }
  EXPECT_GT(checked, 10000);
}

TEST(Attributes, NegationPluralsRequiresAndImplied) {
  const AttributeRules rules = read_attribute_rules(kRules);
  auto a = read_attributes(rules, "Chest X-ray: no nodule in the left upper lobe.");
  EXPECT_EQ(a.at("modality"), "chest_xray");
  EXPECT_EQ(a.at("finding"), "normal");  // negated
  EXPECT_EQ(a.at("side"), "none");       // requires a finding
  a = read_attributes(rules, "No mass, but three small calcifications in the right middle zone.");
  EXPECT_EQ(a.at("finding"), "calcification");  // the mass is negated; the plural matches
  EXPECT_EQ(a.at("count"), "3");
  EXPECT_EQ(a.at("size"), "small");
  EXPECT_EQ(a.at("zone"), "middle");
  EXPECT_EQ(a.at("modality"), "none");  // no modality word
  a = read_attributes(rules, "Axial CT showing a large right pleural effusion.");
  EXPECT_EQ(a.at("zone"), "lower");  // implied by the effusion
  a = read_attributes(rules, "Brain MRI: two masses and a cavity.");
  EXPECT_EQ(a.at("finding"), "mass");  // the earliest keyword wins
  EXPECT_EQ(a.at("count"), "2");
}

TEST(Attributes, ScoresAreAccuracyAndMacroF1) {
  const AttributeRules rules = read_attribute_rules(kRules);
  // Finding: references nodule, nodule, mass, normal; predictions nodule, mass, mass, nodule.
  const std::map<std::string, std::string> pred = {
      {"1", "a nodule"}, {"2", "a mass"}, {"3", "a mass"}, {"4", "a nodule"}};
  const std::map<std::string, std::vector<std::string>> ref = {
      {"1", {"a nodule"}}, {"2", {"a nodule", "a mass"}}, {"3", {"a mass"}}, {"4", {"normal study"}}};
  Scores s;
  score_attributes(rules, pred, ref, {"1", "2", "3", "4"}, s);
  EXPECT_EQ(s.n, 4);
  EXPECT_DOUBLE_EQ(*s.values.at("finding_acc"), 0.5);
  // nodule: tp 1 fp 1 fn 1 -> 0.5; mass: tp 1 fp 1 fn 0 -> 2/3; normal: tp 0 fp 0 fn 1 -> 0.
  EXPECT_DOUBLE_EQ(*s.values.at("finding_f1"), (0.5 + 2.0 / 3.0 + 0.0) / 3.0);
  EXPECT_DOUBLE_EQ(*s.values.at("modality_acc"), 1.0);  // "none" on both sides
  EXPECT_EQ(attribute_metric_names(rules).front(), "modality_acc");
  EXPECT_THROW(score_attributes(rules, pred, ref, {"9"}, s), Error);
}

TEST(Attributes, PairedBootstrapCentresOnTheDifferenceAndNarrowsWithMoreItems) {
  // B right on 60 of 100 items, A on 40, with A's right items a subset of B's.
  std::vector<bool> a(100, false), b(100, false);
  for (int i = 0; i < 60; ++i) b[static_cast<size_t>(i)] = true;
  for (int i = 0; i < 40; ++i) a[static_cast<size_t>(i)] = true;
  const auto d = paired_bootstrap(a, b, 4000, 7);
  EXPECT_EQ(d.n, 100);
  EXPECT_DOUBLE_EQ(d.a, 0.4);
  EXPECT_DOUBLE_EQ(d.b, 0.6);
  EXPECT_DOUBLE_EQ(d.difference, 0.2);
  EXPECT_LT(d.low, 0.2);
  EXPECT_GT(d.high, 0.2);
  // The paired difference is a mean of 20 ones among 100: sd sqrt(0.2 * 0.8 / 100) = 0.04, so the
  // interval spans about 0.2 +- 0.08.
  EXPECT_NEAR(d.low, 0.12, 0.03);
  EXPECT_NEAR(d.high, 0.28, 0.03);
  std::vector<bool> a4, b4;
  for (int k = 0; k < 4; ++k) {
    a4.insert(a4.end(), a.begin(), a.end());
    b4.insert(b4.end(), b.begin(), b.end());
  }
  const auto d4 = paired_bootstrap(a4, b4, 4000, 7);
  EXPECT_LT(d4.high - d4.low, 0.7 * (d.high - d.low));
  EXPECT_EQ(paired_bootstrap(a, b, 4000, 7).low, d.low);  // seeded
  EXPECT_THROW(paired_bootstrap(a, std::vector<bool>(3), 4000, 7), Error);
}

TEST(Attributes, RuleFileErrorsNameTheKey) {
  TempDir dir;
  auto expect_error = [&](const std::string& json, const std::string& part) {
    const std::string path = dir.file("rules.json");
    msmedcap::testing::write_text(path, json);
    try {
      read_attribute_rules(path);
      ADD_FAILURE() << "no error for " << json;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(part), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
    }
  };
  expect_error(R"({"attributes": {"a": {"values": {"x": ["x"]}, "absnet": "n"}}})", "attributes.a.absnet");
  expect_error(R"({"attributes": {"a": {"values": {"x": []}}}})", "attributes.a.values.x");
  expect_error(R"({"attributes": {"a": {"values": {"x": ["x"]}, "requires": "b"}}})", "\"b\" is not an attribute");
  expect_error(R"({"attribute": {}})", "attribute: unknown key");
  expect_error(R"({"negation": {"cues": ["no"], "window": -1}})", "window");
  expect_error(R"({"attributes": {}})", "names no attribute");
}

}  // namespace
}  // namespace msmedcap::metrics
