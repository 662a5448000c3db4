// Run reports: chart ticks and drawing, metrics curves from metrics.jsonl, score tables over
// seeds and groups.
#include <gtest/gtest.h>

#include <cmath>

#include <opencv2/core.hpp>

#include "msmedcap/core/check.h"
#include "msmedcap/report/plot.h"
#include "msmedcap/report/summary.h"
#include "test_utils.h"

namespace msmedcap::report {
namespace {

TEST(Plot, NiceTicksAreRoundAndCoverTheRange) {
  const auto unit = nice_ticks(0, 1);
  ASSERT_EQ(unit.size(), 6u);
  for (size_t i = 0; i < unit.size(); ++i) EXPECT_NEAR(unit[i], 0.2 * static_cast<double>(i), 1e-12);
  const auto t = nice_ticks(3, 402);
  EXPECT_EQ(t.front(), 100);
  EXPECT_EQ(t.back(), 400);
  EXPECT_DOUBLE_EQ(t[1] - t[0], 100);
  EXPECT_EQ(nice_ticks(5, 5).size(), 6u);  // an empty range widens
  for (const auto& [lo, hi] : std::vector<std::pair<double, double>>{{0.47, 0.73}, {-3, 7}, {1e-4, 9e-4}, {5, 5.5}}) {
    const auto ticks = nice_ticks(lo, hi);
    ASSERT_GE(ticks.size(), 2u) << lo << ".." << hi;
    const double step = ticks[1] - ticks[0];
    const double mantissa = step / std::pow(10.0, std::floor(std::log10(step) + 1e-9));
    EXPECT_TRUE(std::abs(mantissa - 1) < 1e-6 || std::abs(mantissa - 2) < 1e-6 || std::abs(mantissa - 5) < 1e-6)
        << step;
    EXPECT_GE(ticks.front(), lo - 1e-12);  // inside the range, less than a step from its ends
    EXPECT_LE(ticks.back(), hi + 1e-12);
    EXPECT_LT(ticks.front() - lo, step + 1e-12);
    EXPECT_LT(hi - ticks.back(), step + 1e-12);
    EXPECT_LE(ticks.size(), 12u);
  }
}

/// Pixels of exactly `bgr` in the image.
int count_colour(const cv::Mat& img, const cv::Vec3b& bgr) {
  int n = 0;
  for (int y = 0; y < img.rows; ++y)
    for (int x = 0; x < img.cols; ++x) n += img.at<cv::Vec3b>(y, x) == bgr;
  return n;
}

TEST(Plot, EachSeriesIsDrawnInItsColour) {
  Series a{"loss", {0, 10, 20, 30}, {4, 3, 2.5, 2.2}, false};
  Series b{"val", {10, 30}, {3.5, 2.6}, true};
  ChartOptions o;
  o.title = "t";
  const cv::Mat img = render_line_chart({a, b}, o);
  EXPECT_EQ(img.cols, o.width);
  EXPECT_EQ(img.rows, o.height);
  EXPECT_GT(count_colour(img, {180, 119, 31}), 100);  // first colour (tab10 blue)
  EXPECT_GT(count_colour(img, {14, 127, 255}), 30);   // second (orange)
  EXPECT_EQ(count_colour(img, {44, 160, 44}), 0);     // no third series

  // Non-finite points are skipped; a chart with nothing to draw is an error.
  Series nan{"nan", {0, 1}, {NAN, INFINITY}, false};
  EXPECT_THROW(render_line_chart({nan}, o), Error);
  o.log_y = true;
  Series negative{"neg", {0, 1}, {-1, 0}, false};
  EXPECT_THROW(render_line_chart({negative}, o), Error);
  EXPECT_NO_THROW(render_line_chart({a, negative}, o));
  Series ragged{"r", {0, 1}, {1}, false};
  EXPECT_THROW(render_line_chart({ragged}, o), Error);
}

TEST(Summary, MetricsSeriesReadsTrainingOrValidationLines) {
  testing::TempDir dir;
  testing::write_text(dir.file("metrics.jsonl"),
                      "{\"step\": 10, \"loss\": 3.0, \"lm\": 3.0}\n"
                      "{\"step\": 20, \"loss\": 2.0, \"lm\": 2.0}\n"
                      "{\"step\": 20, \"val\": {\"loss\": 2.5, \"CIDEr\": 0.4}, \"best\": true}\n"
                      "{\"step\": 30, \"loss\": 1.5}\n");
  const auto train = metrics_series(dir.path(), "lm", false, "run");
  EXPECT_EQ(train.x, (std::vector<double>{10, 20}));
  EXPECT_EQ(train.y, (std::vector<double>{3.0, 2.0}));
  const auto val = metrics_series(dir.file("metrics.jsonl"), "CIDEr", true, "run");
  EXPECT_EQ(val.x, (std::vector<double>{20}));
  EXPECT_EQ(val.y, (std::vector<double>{0.4}));
  EXPECT_TRUE(val.markers);
  testing::write_text(dir.file("bad.jsonl"), "{\"step\": 1, \"loss\": 1}\n{\"loss\": 2}\n");
  try {
    metrics_series(dir.file("bad.jsonl"), "loss", false, "x");
    FAIL() << "a line without a step was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("bad.jsonl:2"), std::string::npos) << e.what();
  }
}

TEST(Summary, ScoresOverSeedsAndGroups) {
  const Stat s = stat_of({1.0, 2.0, 3.0});
  EXPECT_DOUBLE_EQ(s.mean, 2.0);
  EXPECT_DOUBLE_EQ(s.sd, 1.0);  // sample sd
  EXPECT_EQ(format_stat(s, 2), "2.00 ± 1.00");
  EXPECT_EQ(format_stat(stat_of({0.25}), 3), "0.250");
  EXPECT_EQ(format_stat(stat_of({})), "n/a");

  testing::TempDir dir;
  testing::write_text(dir.file("a1.json"),
                      R"({"Bleu_4": 0.2, "CIDEr": 1.0, "METEOR": null,
                          "groups": {"size": {"small": {"n": 3, "CIDEr": 0.5}, "large": {"n": 2, "CIDEr": 1.5}}}})");
  testing::write_text(dir.file("a2.json"),
                      R"({"Bleu_4": 0.4, "CIDEr": 2.0, "METEOR": null,
                          "groups": {"size": {"small": {"n": 3, "CIDEr": 0.7}, "large": {"n": 2, "CIDEr": 1.7}}}})");
  testing::write_text(dir.file("b.json"), R"({"Bleu_4": 0.1, "CIDEr": 0.3})");
  const auto sets =
      read_score_sets({"dual=" + dir.file("a1.json"), "base=" + dir.file("b.json"), "dual=" + dir.file("a2.json")});
  ASSERT_EQ(sets.size(), 2u);
  EXPECT_EQ(sets[0].name, "dual");
  EXPECT_EQ(sets[0].runs.size(), 2u);
  const std::string table = scores_table(sets, {"Bleu_4", "METEOR", "CIDEr"});
  EXPECT_NE(table.find("| system | seeds | Bleu_4 | METEOR | CIDEr |"), std::string::npos) << table;
  EXPECT_NE(table.find("| dual | 2 | 0.3000 ± 0.1414 | n/a | 1.5000 ± 0.7071 |"), std::string::npos) << table;
  EXPECT_NE(table.find("| base | 1 | 0.1000 | n/a | 0.3000 |"), std::string::npos) << table;
  EXPECT_EQ(group_fields(sets), std::vector<std::string>{"size"});
  const std::string groups = group_table(sets, "size", "CIDEr");
  EXPECT_NE(groups.find("| system | large (n=2) | small (n=3) |"), std::string::npos) << groups;
  EXPECT_NE(groups.find("| dual | 1.6000 ± 0.1414 | 0.6000 ± 0.1414 |"), std::string::npos) << groups;
  EXPECT_NE(groups.find("| base | n/a | n/a |"), std::string::npos) << groups;
  EXPECT_EQ(group_table(sets, "finding", "CIDEr"), "");
  // Systems scored on splits of different sizes: each cell names its own n.
  testing::write_text(dir.file("seen.json"), R"({"Bleu_4": 0.5, "CIDEr": 2.5,
                          "groups": {"size": {"small": {"n": 7, "CIDEr": 0.9}, "large": {"n": 2, "CIDEr": 1.1}}}})");
  const auto mixed = read_score_sets({"dual=" + dir.file("a1.json"), "dual, test_seen=" + dir.file("seen.json")});
  const std::string split_groups = group_table(mixed, "size", "CIDEr");
  EXPECT_NE(split_groups.find("| system | large (n=2) | small |"), std::string::npos) << split_groups;
  EXPECT_NE(split_groups.find("| dual | 1.5000 | 0.5000 (n=3) |"), std::string::npos) << split_groups;
  EXPECT_NE(split_groups.find("| dual, test_seen | 1.1000 | 0.9000 (n=7) |"), std::string::npos) << split_groups;
  EXPECT_THROW(read_score_sets({"no-equals-sign"}), Error);
  EXPECT_THROW(read_score_sets({"x=" + dir.file("missing.json")}), Error);
}

TEST(Summary, AttentionOnFindingIsMeanShareBesideMeanArea) {
  testing::TempDir dir;
  const std::string f = dir.file("captions.jsonl");
  testing::write_text(f,
                      "{\"id\": \"a\", \"caption\": \"x\", \"attention_on_finding\": {\"clip\": 0.2, \"sam\": 0.5}, "
                      "\"finding_area\": {\"clip\": 0.1, \"sam\": 0.1}}\n"
                      "{\"id\": \"b\", \"caption\": \"normal\"}\n"
                      "{\"id\": \"c\", \"caption\": \"y\", \"attention_on_finding\": {\"clip\": 0.0, \"sam\": 0.3}, "
                      "\"finding_area\": {\"clip\": 0.1, \"sam\": 0.3}}\n");
  const std::string table = attention_on_finding_table(f);
  EXPECT_NE(table.find("| clip | 2 | 0.1000 | 0.1000 | 1.00 |"), std::string::npos) << table;
  EXPECT_NE(table.find("| sam | 2 | 0.4000 | 0.2000 | 2.00 |"), std::string::npos) << table;
  testing::write_text(f, "{\"id\": \"a\", \"caption\": \"x\"}\n");
  EXPECT_EQ(attention_on_finding_table(f), "");
  testing::write_text(f, "{\"id\": \"a\", \"attention_on_finding\": {\"clip\": 1}}\n");
  EXPECT_THROW(attention_on_finding_table(f), Error);
}

}  // namespace
}  // namespace msmedcap::report
