#pragma once
/// Captioning metrics exactly as pycocoevalcap computes them (docs/DATA.md, "Captioning metrics")
/// on already PTB-tokenised text (tokens joined by single spaces). No torch here.

#include <array>
#include <string>
#include <vector>

namespace msmedcap::metrics {

/// One evaluated item: the hypothesis and its references, PTB-tokenised.
struct Item {
  std::string hyp;
  std::vector<std::string> refs;
};

/// A metric's corpus score and its per-item scores (pycocoevalcap's two return values).
struct Score {
  double corpus = 0;
  std::vector<double> per_item;
};

/// Tokens of `s.split()` (runs of whitespace) and of `s.split(" ")` (single spaces; "" -> [""]).
std::vector<std::string> split_whitespace(const std::string& s);
std::vector<std::string> split_space(const std::string& s);

/// BLEU-1..4 (bleu_scorer.py, option "closest"): clipped n-gram counts, closest reference length
/// with ties to the shorter, tiny = 1e-15 and small = 1e-9, one corpus brevity penalty.
std::array<Score, 4> bleu(const std::vector<Item>& items);

/// ROUGE-L (rouge.py): LCS precision and recall each maxed over references, beta 1.2; the corpus
/// score is the mean of the items'.
Score rouge_l(const std::vector<Item>& items);

/// CIDEr-D (cider_scorer.py): 1..4-grams, tf-idf with document frequencies from the evaluated
/// references, clipped similarity, length penalty sigma 6 on the bigram count, x10, mean over n
/// and references; the corpus score is the mean of the items'.
Score cider_d(const std::vector<Item>& items);

}  // namespace msmedcap::metrics
