#include "msmedcap/metrics/scorer.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <map>
#include <set>
#include <sstream>

namespace msmedcap::metrics {
namespace {

using Counts = std::map<std::vector<std::string>, double>;

/// Counts of the k-grams of `tokens` for k = 1..n, one map per k (index k - 1).
std::vector<Counts> ngram_counts(const std::vector<std::string>& tokens, int n) {
  std::vector<Counts> out(static_cast<size_t>(n));
  for (int k = 1; k <= n; ++k) {
    for (size_t i = 0; i + static_cast<size_t>(k) <= tokens.size(); ++i) {
      out[static_cast<size_t>(k - 1)][std::vector<std::string>(
          tokens.begin() + static_cast<std::ptrdiff_t>(i), tokens.begin() + static_cast<std::ptrdiff_t>(i) + k)] += 1;
    }
  }
  return out;
}

/// BLEU_1..4 from summed statistics (bleu_scorer.py compute_score with option "closest").
std::array<double, 4> bleu_from(const std::array<double, 4>& correct, const std::array<double, 4>& guess,
                                double testlen, double reflen) {
  constexpr double kTiny = 1e-15, kSmall = 1e-9;
  std::array<double, 4> out{};
  double product = 1;
  for (int k = 0; k < 4; ++k) {
    product *= (correct[k] + kTiny) / (guess[k] + kSmall);
    out[k] = std::pow(product, 1.0 / (k + 1));
  }
  const double ratio = (testlen + kTiny) / (reflen + kSmall);
  if (ratio < 1) {
    for (auto& b : out) b *= std::exp(1 - 1 / ratio);
  }
  return out;
}

}  // namespace

std::vector<std::string> split_whitespace(const std::string& s) {
  std::istringstream in(s);
  std::vector<std::string> out;
  std::string t;
  while (in >> t) out.push_back(t);
  return out;
}

std::vector<std::string> split_space(const std::string& s) {
  std::vector<std::string> out;
  size_t start = 0;
  for (;;) {
    const size_t sp = s.find(' ', start);
    out.push_back(s.substr(start, sp == std::string::npos ? std::string::npos : sp - start));
    if (sp == std::string::npos) return out;
    start = sp + 1;
  }
}

std::array<Score, 4> bleu(const std::vector<Item>& items) {
  std::array<Score, 4> out;
  std::array<double, 4> correct{}, guess{};
  double testlen = 0, reflen = 0;
  for (const auto& item : items) {
    const auto hyp = split_whitespace(item.hyp);
    const auto hyp_counts = ngram_counts(hyp, 4);
    std::vector<Counts> max_ref(4);
    double closest = -1;
    const double len = static_cast<double>(hyp.size());
    for (const auto& r : item.refs) {
      const auto ref = split_whitespace(r);
      const auto counts = ngram_counts(ref, 4);
      for (size_t k = 0; k < 4; ++k) {
        for (const auto& [g, c] : counts[k]) max_ref[k][g] = std::max(max_ref[k][g], c);
      }
      const double rl = static_cast<double>(ref.size());
      // min((abs(l - testlen), l)): the closest length, ties to the shorter.
      if (closest < 0 || std::abs(rl - len) < std::abs(closest - len) ||
          (std::abs(rl - len) == std::abs(closest - len) && rl < closest)) {
        closest = rl;
      }
    }
    if (closest < 0) closest = 0;
    std::array<double, 4> c{}, g{};
    for (size_t k = 0; k < 4; ++k) {
      g[k] = std::max(0.0, len - static_cast<double>(k));
      for (const auto& [gram, n] : hyp_counts[k]) {
        const auto it = max_ref[k].find(gram);
        if (it != max_ref[k].end()) c[k] += std::min(n, it->second);
      }
      correct[k] += c[k];
      guess[k] += g[k];
    }
    testlen += len;
    reflen += closest;
    const auto single = bleu_from(c, g, len, closest);
    for (size_t k = 0; k < 4; ++k) out[k].per_item.push_back(single[k]);
  }
  const auto corpus = bleu_from(correct, guess, testlen, reflen);
  for (size_t k = 0; k < 4; ++k) out[k].corpus = corpus[k];
  return out;
}

Score rouge_l(const std::vector<Item>& items) {
  constexpr double kBeta = 1.2;
  Score out;
  double sum = 0;
  for (const auto& item : items) {
    const auto hyp = split_space(item.hyp);
    double best_p = 0, best_r = 0;
    for (const auto& r : item.refs) {
      const auto ref = split_space(r);
      // Longest common subsequence by dynamic programming.
      std::vector<std::vector<int>> dp(ref.size() + 1, std::vector<int>(hyp.size() + 1, 0));
      for (size_t i = 1; i <= ref.size(); ++i) {
        for (size_t j = 1; j <= hyp.size(); ++j) {
          dp[i][j] = ref[i - 1] == hyp[j - 1] ? dp[i - 1][j - 1] + 1 : std::max(dp[i - 1][j], dp[i][j - 1]);
        }
      }
      const double lcs = dp[ref.size()][hyp.size()];
      best_p = std::max(best_p, lcs / static_cast<double>(hyp.size()));
      best_r = std::max(best_r, lcs / static_cast<double>(ref.size()));
    }
    const double score =
        best_p != 0 && best_r != 0 ? (1 + kBeta * kBeta) * best_p * best_r / (best_r + kBeta * kBeta * best_p) : 0.0;
    out.per_item.push_back(score);
    sum += score;
  }
  out.corpus = items.empty() ? 0.0 : sum / static_cast<double>(items.size());
  return out;
}

Score cider_d(const std::vector<Item>& items) {
  constexpr int kN = 4;
  constexpr double kSigma = 6.0;
  // Document frequency over the references: items whose reference set holds the n-gram.
  std::map<std::vector<std::string>, double> df;
  std::vector<std::vector<std::vector<Counts>>> ref_counts(items.size());
  for (size_t i = 0; i < items.size(); ++i) {
    std::set<std::vector<std::string>> seen;
    for (const auto& r : items[i].refs) {
      ref_counts[i].push_back(ngram_counts(split_whitespace(r), kN));
      for (const auto& counts : ref_counts[i].back()) {
        for (const auto& [g, c] : counts) seen.insert(g);
      }
    }
    for (const auto& g : seen) df[g] += 1;
  }
  const double log_n = std::log(static_cast<double>(items.size()));
  struct Vec {
    std::vector<std::map<std::vector<std::string>, double>> v;
    std::vector<double> norm;
    double length = 0;
  };
  const auto vec = [&](const std::vector<Counts>& counts) {
    Vec out;
    out.v.resize(kN);
    out.norm.assign(kN, 0.0);
    for (int k = 0; k < kN; ++k) {
      for (const auto& [g, tf] : counts[static_cast<size_t>(k)]) {
        const auto it = df.find(g);
        const double idf = log_n - std::log(std::max(1.0, it == df.end() ? 0.0 : it->second));
        out.v[static_cast<size_t>(k)][g] = tf * idf;
        out.norm[static_cast<size_t>(k)] += (tf * idf) * (tf * idf);
        // The reference's quirk: the length is the number of bigrams (its n == 1 is 0-based).
        if (k == 1) out.length += tf;
      }
      out.norm[static_cast<size_t>(k)] = std::sqrt(out.norm[static_cast<size_t>(k)]);
    }
    return out;
  };
  Score out;
  double sum = 0;
  for (size_t i = 0; i < items.size(); ++i) {
    const Vec h = vec(ngram_counts(split_whitespace(items[i].hyp), kN));
    std::vector<double> per_n(kN, 0.0);
    for (const auto& rc : ref_counts[i]) {
      const Vec r = vec(rc);
      const double delta = h.length - r.length;
      for (int k = 0; k < kN; ++k) {
        double s = 0;
        for (const auto& [g, hv] : h.v[static_cast<size_t>(k)]) {
          const auto it = r.v[static_cast<size_t>(k)].find(g);
          if (it != r.v[static_cast<size_t>(k)].end()) s += std::min(hv, it->second) * it->second;
        }
        if (h.norm[static_cast<size_t>(k)] != 0 && r.norm[static_cast<size_t>(k)] != 0) {
          s /= h.norm[static_cast<size_t>(k)] * r.norm[static_cast<size_t>(k)];
        }
        per_n[static_cast<size_t>(k)] += s * std::exp(-(delta * delta) / (2 * kSigma * kSigma));
      }
    }
    double mean = 0;
    for (double s : per_n) mean += s;
    mean /= kN;
    const double score = items[i].refs.empty() ? 0.0 : 10.0 * mean / static_cast<double>(items[i].refs.size());
    out.per_item.push_back(score);
    sum += score;
  }
  out.corpus = items.empty() ? 0.0 : sum / static_cast<double>(items.size());
  return out;
}

}  // namespace msmedcap::metrics
