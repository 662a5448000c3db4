// Keyed dropout: the mask drops p of the elements and scales the rest by 1 / (1 - p); it is a
// function of (seed, pass, site, row key) only, so a row's output does not depend on which other
// rows share its batch or on where it sits; eval mode and p = 0 draw nothing; the Q-Former's
// sites are wired (training output differs from eval, the text path included) and a scope's
// keys are removed when it ends.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>

#include "msmedcap/core/check.h"
#include "msmedcap/models/dropout.h"
#include "msmedcap/models/qformer.h"
#include "tiny_models.h"

namespace msmedcap::models {
namespace {

config::QFormerConfig tiny_qformer() { return testing::tiny_text_qformer(); }

TEST(KeyedDropout, DropsPAndScalesTheRest) {
  DropoutKeys keys;
  keys.begin(11, {3, 8});
  keys.next_pass();
  const auto x = at::ones({2, 500, 1000});
  const double p = 0.1;
  const auto y = keys.apply(x, p, 4);
  const double dropped = y.eq(0).to(at::kDouble).mean().item<double>();
  // 10^6 Bernoulli(0.1) draws: standard error 3e-4; 3e-3 is ten of them.
  EXPECT_NEAR(dropped, p, 3e-3);
  const auto kept = y.masked_select(y.ne(0));
  EXPECT_TRUE(at::allclose(kept, at::full_like(kept, 1.0 / (1.0 - p))));
  // Each row on its own also drops about p (rows do not share one stream).
  for (int64_t r = 0; r < 2; ++r) EXPECT_NEAR(y[r].eq(0).to(at::kDouble).mean().item<double>(), p, 4e-3) << r;
  // Another site, pass or seed gives another mask; the same keys give the same one.
  EXPECT_TRUE(at::equal(y, keys.apply(x, p, 4)));
  EXPECT_FALSE(at::equal(y, keys.apply(x, p, 5)));
  keys.next_pass();
  EXPECT_FALSE(at::equal(y, keys.apply(x, p, 4)));
  DropoutKeys other;
  other.begin(12, {3, 8});
  other.next_pass();
  EXPECT_FALSE(at::equal(y, other.apply(x, p, 4)));
}

TEST(KeyedDropout, ARowsMaskFollowsItsKeyNotItsPlace) {
  const auto x = at::ones({3, 7, 9});
  DropoutKeys abc, ca;
  abc.begin(5, {10, 20, 30});
  ca.begin(5, {30, 10});
  const auto y = abc.apply(x, 0.3, 1);
  const auto z = ca.apply(x.narrow(0, 0, 2), 0.3, 1);
  EXPECT_TRUE(at::equal(y[2], z[0]));  // key 30
  EXPECT_TRUE(at::equal(y[0], z[1]));  // key 10
  EXPECT_FALSE(at::equal(y[0], y[1]));
  // A pass over 2B rows: the second block has masks of its own.
  const auto twice = ca.apply(at::ones({4, 7, 9}), 0.3, 1);
  EXPECT_TRUE(at::equal(twice.narrow(0, 0, 2), z));
  EXPECT_FALSE(at::equal(twice.narrow(0, 2, 2), z));
  // Rows that are not whole blocks of the keyed batch are an error, not a guess.
  EXPECT_THROW(ca.apply(at::ones({3, 7, 9}), 0.3, 1), Error);
}

TEST(KeyedDropout, QFormerRowOutputIndependentOfItsBatch) {
  QFormerModel q(tiny_qformer());
  at::manual_seed(3);
  const auto queries = at::randn({3, 5, 32}), image = at::randn({3, 9, 24});
  const auto ids = at::randint(1, 40, {3, 6}, at::kLong), mask = at::ones({3, 6}, at::kLong);
  q->train();
  at::Tensor all, all_text, one, one_text;
  {
    DropoutKeyScope scope({q->dropout_keys()}, 99, {4, 5, 6});
    all = q->forward(queries, image);
    all_text = q->encode_text(ids, mask);
  }
  {
    DropoutKeyScope scope({q->dropout_keys()}, 99, {6});
    one = q->forward(queries.narrow(0, 2, 1), image.narrow(0, 2, 1));
    one_text = q->encode_text(ids.narrow(0, 2, 1), mask.narrow(0, 2, 1));
  }
  EXPECT_TRUE(at::allclose(all.narrow(0, 2, 1), one, 1e-6, 1e-6));
  EXPECT_TRUE(at::allclose(all_text.narrow(0, 2, 1), one_text, 1e-6, 1e-6));
  EXPECT_FALSE(q->dropout_keys()->keyed());  // the scope removed its keys

  // Training output differs from eval (every path has sites); eval equals p = 0 in training.
  q->eval();
  const auto eval = q->forward(queries, image);
  const auto eval_text = q->encode_text(ids, mask);
  EXPECT_GT((eval - all).abs().max().item<double>(), 1e-3);
  EXPECT_GT((eval_text - all_text).abs().max().item<double>(), 1e-3);
  auto cfg = tiny_qformer();
  cfg.hidden_dropout_prob = 0.0;
  cfg.attention_probs_dropout_prob = 0.0;
  QFormerModel plain(cfg);
  {
    at::NoGradGuard no_grad;
    auto src = q->named_parameters();
    for (auto& item : plain->named_parameters()) item.value().copy_(src[item.key()]);
  }
  plain->train();
  EXPECT_TRUE(at::allclose(plain->forward(queries, image), eval, 1e-6, 1e-6));
}

TEST(KeyedDropout, AttentionProbabilitiesAloneAreDropped) {
  // Hidden dropout off, attention dropout on: the output still changes in training, so the
  // probabilities' site is wired through the attention math.
  auto cfg = tiny_qformer();
  cfg.hidden_dropout_prob = 0.0;
  cfg.attention_probs_dropout_prob = 0.5;
  QFormerModel q(cfg);
  at::manual_seed(4);
  const auto queries = at::randn({2, 5, 32}), image = at::randn({2, 9, 24});
  q->eval();
  const auto eval = q->forward(queries, image);
  q->train();
  DropoutKeyScope scope({q->dropout_keys()}, 1, {0, 1});
  EXPECT_GT((q->forward(queries, image) - eval).abs().max().item<double>(), 1e-3);
}

TEST(KeyedDropout, ProbabilitiesAreValidated) {
  auto cfg = tiny_qformer();
  cfg.hidden_dropout_prob = 1.0;
  try {
    cfg.validate("model.qformer");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("model.qformer.hidden_dropout_prob"), std::string::npos) << e.what();
  }
  cfg.hidden_dropout_prob = 0.1;
  cfg.attention_probs_dropout_prob = -0.1;
  EXPECT_THROW(cfg.validate("model.qformer"), Error);
}

// The CPU's loop and the tensor-op formulation (the one CUDA runs) give the same masks, bit for
// bit: a run's masks do not depend on the device, and a CPU change of speed is not a change of
// numbers. Seeds span the 31-bit range, rows and row lengths are ragged, p from 0.05 to 0.9.
TEST(KeyedDropout, LoopMaskEqualsTheTensorFormulation) {
  at::manual_seed(3);
  for (const int64_t per_row : {1, 17, 768, 4099}) {
    const auto seeds = at::randint(0, (int64_t{1} << 31) - 1, {7}, at::kLong);
    for (const double p : {0.05, 0.1, 0.5, 0.9}) {
      const auto threshold = static_cast<int64_t>(std::llround(p * 2147483648.0));
      const auto loop = detail::keyed_keep_mask(seeds, per_row, threshold, true);
      const auto ops = detail::keyed_keep_mask(seeds, per_row, threshold, false);
      ASSERT_EQ(loop.sizes(), ops.sizes());
      EXPECT_TRUE(at::equal(loop, ops)) << per_row << " " << p;
      if (per_row >= 768) {  // and it drops about p of them
        EXPECT_NEAR(1.0 - loop.to(at::kDouble).mean().item<double>(), p, 0.02) << per_row << " " << p;
      }
    }
  }
}

}  // namespace
}  // namespace msmedcap::models
