// The stage-1 and captioning losses against hand-written formulas, and the stage-1 objective
// on a tiny model (gradients reach the Q-Former and heads, not the frozen encoder; a fixed
// batch is fitted).
#include <gtest/gtest.h>

#include <cmath>

#include <torch/torch.h>

#include "msmedcap/config/config_io.h"
#include "msmedcap/config/run_config.h"
#include "msmedcap/core/check.h"
#include "msmedcap/losses/encoder_pretrain.h"
#include "msmedcap/losses/itc.h"
#include "msmedcap/losses/itg.h"
#include "msmedcap/losses/itm.h"
#include "msmedcap/losses/lm.h"
#include "msmedcap/losses/stage1.h"
#include "msmedcap/models/pretrained.h"
#include "tiny_models.h"

namespace msmedcap {
namespace {

/// Cross entropy with label smoothing, one row, written out: -(1-e) log p_t - e/N sum_j log p_j.
double smoothed_ce(const std::vector<double>& logits, int64_t target, double eps) {
  double m = -1e300, z = 0;
  for (double l : logits) m = std::max(m, l);
  for (double l : logits) z += std::exp(l - m);
  const auto logp = [&](double l) { return l - m - std::log(z); };
  double mean_logp = 0;
  for (double l : logits) mean_logp += logp(l) / static_cast<double>(logits.size());
  return -(1 - eps) * logp(logits[static_cast<size_t>(target)]) - eps * mean_logp;
}

TEST(Losses, ItcIsMaxOverQueriesWithSmoothedCrossEntropy) {
  torch::manual_seed(1);
  namespace F = torch::nn::functional;
  const auto img =
      F::normalize(torch::randn({3, 4, 5}, torch::kDouble), F::NormalizeFuncOptions().dim(-1));  // [B, Nq, E]
  const auto txt = F::normalize(torch::randn({3, 5}, torch::kDouble), F::NormalizeFuncOptions().dim(-1));
  const auto temp = torch::tensor(0.07, torch::kDouble);
  const auto r = losses::itc_loss(img, txt, img, txt, temp, 0);
  double expect = 0;
  for (int64_t i = 0; i < 3; ++i) {
    std::vector<double> i2t, t2i;
    for (int64_t j = 0; j < 3; ++j) {
      double best_i2t = -1e9, best_t2i = -1e9;
      for (int64_t q = 0; q < 4; ++q) {
        best_i2t = std::max(best_i2t, (img[i][q] * txt[j]).sum().item<double>());
        best_t2i = std::max(best_t2i, (txt[i] * img[j][q]).sum().item<double>());
      }
      i2t.push_back(best_i2t / 0.07);
      t2i.push_back(best_t2i / 0.07);
    }
    expect += (smoothed_ce(i2t, i, 0.1) + smoothed_ce(t2i, i, 0.1)) / 2 / 3;
  }
  EXPECT_NEAR(r.loss.item<double>(), expect, 1e-9);
  EXPECT_EQ(r.sim_i2t.sizes(), (std::vector<int64_t>{3, 3}));
  // bf16 features (bf16 autocast's products): the logits and the loss are float32, and the loss
  // is within 2% of the float32 loss of the same bf16-rounded features.
  const auto img16 = img.to(torch::kBFloat16), txt16 = txt.to(torch::kBFloat16);
  const auto h = losses::itc_loss(img16, txt16, img16, txt16, temp.to(torch::kFloat), 0);
  EXPECT_EQ(h.sim_i2t.scalar_type(), torch::kFloat);
  EXPECT_EQ(h.loss.scalar_type(), torch::kFloat);
  const auto w = losses::itc_loss(img16.to(torch::kFloat), txt16.to(torch::kFloat), img16.to(torch::kFloat),
                                  txt16.to(torch::kFloat), temp.to(torch::kFloat), 0);
  EXPECT_NEAR(h.loss.item<double>(), w.loss.item<double>(), 0.02 * w.loss.item<double>());
  const auto logits = torch::randn({6, 2}).to(torch::kBFloat16);
  EXPECT_EQ(losses::itm_loss(logits).scalar_type(), torch::kFloat);
}

TEST(Losses, ItcRankOffsetsAndImageIdPositives) {
  torch::manual_seed(2);
  const auto all_img = torch::randn({4, 2, 3}, torch::kDouble);
  const auto all_txt = torch::randn({4, 3}, torch::kDouble);
  const auto temp = torch::tensor(0.5, torch::kDouble);
  // Rank 1 of 2 holds rows 2 and 3: its targets are 2 and 3.
  const auto r = losses::itc_loss(all_img.narrow(0, 2, 2), all_txt.narrow(0, 2, 2), all_img, all_txt, temp, 1);
  const auto opts = torch::nn::functional::CrossEntropyFuncOptions().label_smoothing(0.1);
  const auto targets = torch::tensor({2, 3}, torch::kLong);
  const double expect = ((torch::nn::functional::cross_entropy(r.sim_i2t, targets, opts) +
                          torch::nn::functional::cross_entropy(r.sim_t2i, targets, opts)) /
                         2)
                            .item<double>();
  EXPECT_NEAR(r.loss.item<double>(), expect, 1e-12);
  // Image ids: rows 0 and 1 show the same image, so each has two positives.
  const auto ids = torch::tensor({7, 7, 8, 9}, torch::kLong);
  const auto s = losses::itc_loss(all_img, all_txt, all_img, all_txt, temp, 0, 0.1, ids, ids);
  const auto pos = losses::itc_positives(4, 4, 0, ids, ids, torch::kCPU);
  EXPECT_EQ(pos.sum().item<int64_t>(), 6);
  const auto soft = 0.9 * pos.to(torch::kDouble) / pos.to(torch::kDouble).sum(1, true) + 0.1 / 4;
  const double manual = ((-(torch::log_softmax(s.sim_i2t, 1) * soft).sum(1).mean()) +
                         (-(torch::log_softmax(s.sim_t2i, 1) * soft).sum(1).mean()))
                            .item<double>() /
                        2;
  EXPECT_NEAR(s.loss.item<double>(), manual, 1e-12);
}

TEST(Losses, HardNegativesAvoidPositivesAndSurviveNaN) {
  const auto pos = losses::itc_positives(4, 4, 0, {}, {}, torch::kCPU);
  auto sim = torch::zeros({4, 4});
  sim[0][2] = 100;  // text 0's hardest image is 2
  sim[1] = torch::tensor({NAN, NAN, NAN, NAN});
  for (uint64_t seed = 0; seed < 20; ++seed) {
    const auto n = losses::sample_hard_negatives(sim, sim, pos, seed);
    for (int64_t i = 0; i < 4; ++i) {
      EXPECT_NE(n.image_index[i].item<int64_t>(), i);
      EXPECT_NE(n.text_index[i].item<int64_t>(), i);
    }
    EXPECT_EQ(n.image_index[0].item<int64_t>(), 2);
    const auto again = losses::sample_hard_negatives(sim, sim, pos, seed);
    EXPECT_TRUE(torch::equal(n.image_index, again.image_index));
  }
  const auto all_pos = torch::ones({2, 2}, torch::kBool);
  EXPECT_THROW(losses::sample_hard_negatives(torch::zeros({2, 2}), torch::zeros({2, 2}), all_pos, 0), Error);
}

TEST(Losses, HardNegativesDependOnWhichSamplesMeetNotOnTheirOrder) {
  // The same 6 samples as one batch, or split over "ranks" in another order: each sample draws
  // the same negative sample.
  torch::manual_seed(4);
  const auto sim = torch::randn({6, 6}) * 3;
  const auto keys = torch::tensor({10, 11, 12, 13, 14, 15}, torch::kLong);
  const auto pos = torch::eye(6, torch::kBool);
  const auto whole = losses::sample_hard_negatives(sim, sim.t().contiguous(), pos, 9, keys, keys);
  const auto perm = torch::tensor({3, 0, 5, 1, 4, 2}, torch::kLong);
  const auto psim = sim.index_select(0, perm).index_select(1, perm);
  const auto pkeys = keys.index_select(0, perm);
  const auto ppos = pos.index_select(0, perm).index_select(1, perm);
  // Rows 2..3 of the permuted batch only (a rank holding two of the samples).
  const auto part = losses::sample_hard_negatives(psim.narrow(0, 2, 2), psim.t().contiguous().narrow(0, 2, 2),
                                                  ppos.narrow(0, 2, 2), 9, pkeys.narrow(0, 2, 2), pkeys);
  for (int64_t r = 0; r < 2; ++r) {
    const int64_t row = perm[2 + r].item<int64_t>();  // the sample's row in the whole batch
    EXPECT_EQ(pkeys[part.text_index[r].item<int64_t>()].item<int64_t>(),
              keys[whole.text_index[row].item<int64_t>()].item<int64_t>());
    EXPECT_EQ(pkeys[part.image_index[r].item<int64_t>()].item<int64_t>(),
              keys[whole.image_index[row].item<int64_t>()].item<int64_t>());
  }
  // The draws follow the softmax: over many seeds, a far more similar negative wins far more often.
  auto three = torch::zeros({1, 3});
  three[0][1] = 2.0;  // weight e^2 against 1 for column 2
  int wins = 0;
  for (uint64_t seed = 0; seed < 400; ++seed) {
    const auto n = losses::sample_hard_negatives(three, three, torch::tensor({{true, false, false}}), seed);
    wins += n.text_index[0].item<int64_t>() == 1;
  }
  const double expect = 400 * std::exp(2.0) / (std::exp(2.0) + 1);  // 352
  EXPECT_NEAR(wins, expect, 30);
}

TEST(Losses, ItmLabelsOnePositiveTwoNegatives) {
  auto logits = torch::zeros({6, 2}, torch::kDouble);
  logits.narrow(0, 0, 2).select(1, 1).fill_(3.0);  // positives say "match"
  logits.narrow(0, 2, 4).select(1, 0).fill_(3.0);  // negatives say "no match"
  const double good = losses::itm_loss(logits).item<double>();
  EXPECT_NEAR(good, std::log(1 + std::exp(-3.0)), 1e-12);
  EXPECT_NEAR(losses::itm_loss(logits.flip({1})).item<double>(), std::log(1 + std::exp(3.0)), 1e-12);
  EXPECT_THROW(losses::itm_loss(torch::zeros({4, 2})), Error);
}

TEST(Losses, NextTokenLossShiftsIgnoresAndSmooths) {
  torch::manual_seed(3);
  const auto logits = torch::randn({2, 4, 6}, torch::kDouble);
  const auto labels = torch::tensor({{1, 2, 3, -100}, {4, 5, -100, -100}}, torch::kLong);
  double sum = 0;
  int n = 0;
  for (int64_t b = 0; b < 2; ++b)
    for (int64_t t = 0; t + 1 < 4; ++t) {
      const int64_t y = labels[b][t + 1].item<int64_t>();
      if (y == -100) continue;
      std::vector<double> row;
      for (int64_t v = 0; v < 6; ++v) row.push_back(logits[b][t][v].item<double>());
      sum += smoothed_ce(row, y, 0.1);
      ++n;
    }
  EXPECT_NEAR(losses::next_token_loss(logits, labels, 0.1).item<double>(), sum / n, 1e-6);
  const auto [input, itg_labels] = losses::itg_inputs(torch::tensor({{101, 7, 102, 0}}, torch::kLong),
                                                      torch::tensor({{1, 1, 1, 0}}, torch::kLong), 999);
  EXPECT_TRUE(torch::equal(input, torch::tensor({{999, 7, 102, 0}}, torch::kLong)));
  EXPECT_TRUE(torch::equal(itg_labels, torch::tensor({{999, 7, 102, -100}}, torch::kLong)));
}

TEST(Losses, LmTargetsMaskPrefixPromptAndPadding) {
  const auto ids = torch::tensor({{2, 10, 11, 12, 1}, {2, 10, 13, 1, 1}}, torch::kLong);
  const auto mask = torch::tensor({{1, 1, 1, 1, 0}, {1, 1, 1, 0, 0}}, torch::kLong);
  const auto t = losses::lm_targets(ids, mask, 3, {2, 2});
  EXPECT_TRUE(torch::equal(
      t, torch::tensor({{-100, -100, -100, -100, -100, 11, 12, -100}, {-100, -100, -100, -100, -100, 13, -100, -100}},
                       torch::kLong)));
  EXPECT_THROW(losses::lm_targets(ids, mask, 3, {1}), Error);
  // lm_loss: plain (unsmoothed) cross entropy of the shifted logits over the kept targets.
  torch::manual_seed(9);
  const auto logits = torch::randn({2, 8, 16}, torch::kDouble);
  const auto keep = t.narrow(1, 1, 7).reshape({-1}).ne(-100);
  const auto logp = torch::log_softmax(logits.narrow(1, 0, 7).reshape({-1, 16}), 1);
  const auto picked = logp.index({keep}).gather(1, t.narrow(1, 1, 7).reshape({-1}).index({keep}).view({-1, 1}));
  EXPECT_NEAR(losses::lm_loss(logits, t).item<double>(), -picked.mean().item<double>(), 1e-6);
}

TEST(Losses, CaptionLossEqualsTheLossOverEveryPosition) {
  // caption_loss runs the LM head on [last prefix position, text] only; the loss (with the
  // first text token predicted from the last query, as LAVIS) and its gradients are those of
  // lm_loss over the logits of every position.
  torch::manual_seed(11);
  const auto cfg = testing::tiny_stage1_config();
  auto model = models::build_model(cfg.model);
  model->eval();
  const auto pixels = torch::randn({2, 3, cfg.model.vision.image_size, cfg.model.vision.image_size});
  const auto sam = torch::randn({2, 3, cfg.model.sam.image_size, cfg.model.sam.image_size});
  const auto ids = torch::randint(3, 40, {2, 6}, torch::kLong);
  const auto mask = torch::tensor({{1, 1, 1, 1, 1, 1}, {1, 1, 1, 1, 0, 0}}, torch::kLong);
  const std::vector<int64_t> prompt = {2, 1};
  auto grads = [&] {
    std::vector<torch::Tensor> g;
    for (const auto& p : model->language_projection->parameters()) g.push_back(p.grad().clone());
    model->zero_grad();
    return g;
  };
  const auto prefix = model->encode_images(pixels, sam);
  const auto full = model->forward_text(prefix, ids, mask).logits;
  const auto expected = losses::lm_loss(full, losses::lm_targets(ids, mask, prefix.embeds.size(1), prompt));
  expected.backward();
  const auto expected_grads = grads();
  const auto prefix2 = model->encode_images(pixels, sam);
  const auto loss = losses::caption_loss(*model, &prefix2, ids, mask, prompt);
  EXPECT_NEAR(loss.item<double>(), expected.item<double>(), 1e-5);
  loss.backward();
  const auto got = grads();
  for (size_t i = 0; i < got.size(); ++i) EXPECT_TRUE(torch::allclose(got[i], expected_grads[i], 1e-4, 1e-6)) << i;
  // Text alone (decoder_lm): the first token has nothing before it.
  auto& lm = *model->language_model;
  const auto text_only = losses::lm_loss(lm.forward(lm.embed(ids), mask), losses::lm_targets(ids, mask, 0, prompt));
  EXPECT_NEAR(losses::caption_loss(*model, nullptr, ids, mask, prompt).item<double>(), text_only.item<double>(), 1e-6);
  // With inputs (word dropout's): the decoder reads the inputs, the targets are still ids.
  torch::NoGradGuard no_grad;
  auto read = ids.clone();
  read[0][3] = 0;
  read[1][2] = 0;
  const auto dropped = losses::lm_loss(model->forward_text(prefix, read, mask).logits,
                                       losses::lm_targets(ids, mask, prefix.embeds.size(1), prompt));
  EXPECT_NEAR(losses::caption_loss(*model, &prefix, ids, mask, prompt, read).item<double>(), dropped.item<double>(),
              1e-5);
  EXPECT_GT(std::abs(dropped.item<double>() - expected.item<double>()), 1e-4);  // the replaced inputs count
  EXPECT_THROW(losses::caption_loss(*model, &prefix, ids, mask, prompt, read.narrow(1, 0, 5)), Error);
}

TEST(Losses, WordDropoutReplacesCaptionTokensOnly) {
  // 200 rows of 30 tokens: the first token (bos), the prompt and the padding are never replaced;
  // the share of replaced caption tokens is p; the draw depends on (seed, row key, position) only.
  const int64_t rows = 200, cols = 30;
  const auto ids = torch::randint(4, 500, {rows, cols}, torch::kLong);
  auto mask = torch::ones({rows, cols}, torch::kLong);
  std::vector<int64_t> prompt(rows), keys(rows);
  for (int64_t b = 0; b < rows; ++b) {
    mask[b].narrow(0, cols - b % 7, b % 7).zero_();  // 0..6 padding positions
    prompt[static_cast<size_t>(b)] = b % 3;
    keys[static_cast<size_t>(b)] = 1000 + b;
  }
  EXPECT_TRUE(torch::equal(losses::drop_words(ids, mask, prompt, 0.0, 0, 5, keys), ids));
  const auto out = losses::drop_words(ids, mask, prompt, 0.3, 0, 5, keys);
  const auto changed = out.ne(ids);
  int64_t eligible = 0;
  for (int64_t b = 0; b < rows; ++b) {
    const int64_t first = std::max<int64_t>(1, prompt[static_cast<size_t>(b)]), end = cols - b % 7;
    eligible += end - first;
    EXPECT_FALSE(changed[b].narrow(0, 0, first).any().item<bool>()) << b;         // bos and prompt
    EXPECT_FALSE(changed[b].narrow(0, end, cols - end).any().item<bool>()) << b;  // padding
  }
  EXPECT_TRUE(out.index({changed}).eq(0).all().item<bool>());  // replaced by the replacement id
  const double share = static_cast<double>(changed.sum().item<int64_t>()) / static_cast<double>(eligible);
  EXPECT_NEAR(share, 0.3, 0.03) << eligible;  // ~5 300 draws: sd 0.006
  // Keyed by row key, not by row order: rows swapped give the rows' own draws swapped.
  const auto swapped = losses::drop_words(ids.flip(0), mask.flip(0), {prompt.rbegin(), prompt.rend()}, 0.3, 0, 5,
                                          {keys.rbegin(), keys.rend()});
  EXPECT_TRUE(torch::equal(swapped, out.flip(0)));
  EXPECT_FALSE(torch::equal(losses::drop_words(ids, mask, prompt, 0.3, 0, 6, keys), out));  // another seed
  EXPECT_THROW(losses::drop_words(ids, mask, prompt, 1.0, 0, 5, keys), Error);
  EXPECT_THROW(losses::drop_words(ids, mask, prompt, 0.3, 0, 5, {1, 2}), Error);
}

TEST(Stage1Objective, GradientsReachTheQFormerNotTheEncoderAndABatchIsFitted) {
  torch::manual_seed(4);
  const auto cfg = testing::tiny_stage1_config();
  auto model = models::build_model(cfg.model);
  for (bool sam : {false, true}) {
    const auto branch = sam ? config::Branch::kSam : config::Branch::kClip;
    losses::Stage1Batch batch;
    batch.images.clip_pixels = torch::randn({4, 3, 32, 32});
    batch.images.sam_pixels = torch::randn({4, 3, 64, 64});
    batch.text_ids = torch::randint(5, 900, {4, 6}, torch::kLong);
    batch.text_ids.select(1, 0).fill_(101);
    batch.text_mask = torch::ones({4, 6}, torch::kLong);
    batch.text_mask[3].narrow(0, 4, 2).fill_(0);
    batch.text_ids[3].narrow(0, 4, 2).fill_(0);
    model->zero_grad();
    const auto l = losses::stage1_losses(*model, branch, batch, 999, 0);
    EXPECT_TRUE(torch::isfinite(l.total).item<bool>());
    EXPECT_NEAR(l.total.item<double>(), (l.itc + l.itm + l.itg).item<double>(), 1e-5);
    l.total.backward();
    auto qf = sam ? model->sam_qformer : model->qformer;
    double qgrad = 0;
    for (const auto& p : qf->parameters())
      if (p.grad().defined()) qgrad += p.grad().abs().sum().item<double>();
    EXPECT_GT(qgrad, 0.0);
    EXPECT_TRUE(model->heads(branch).temp.grad().defined());
    for (const auto& p : model->vision_model->parameters())
      EXPECT_FALSE(p.grad().defined() && p.grad().abs().sum().item<double>() > 0);
    for (const auto& p : model->sam_model->parameters())
      EXPECT_FALSE(p.grad().defined() && p.grad().abs().sum().item<double>() > 0);

    // A fixed batch is fitted: Adam on the branch's Q-Former, queries and heads lowers the loss.
    std::vector<torch::Tensor> params = qf->parameters();
    params.push_back(sam ? model->sam_query_tokens : model->query_tokens);
    for (auto* m : {&model->heads(branch).vision_projection, &model->heads(branch).text_projection,
                    &model->heads(branch).itm_head})
      for (const auto& p : (*m)->parameters()) params.push_back(p);
    torch::optim::Adam opt(params, torch::optim::AdamOptions(1e-3));
    const double first = l.total.item<double>();
    double last = first;
    for (int step = 0; step < 40; ++step) {
      opt.zero_grad();
      const auto s = losses::stage1_losses(*model, branch, batch, 999, static_cast<uint64_t>(step));
      s.total.backward();
      opt.step();
      last = s.total.item<double>();
    }
    EXPECT_LT(last, 0.7 * first) << (sam ? "sam" : "clip") << ": " << first << " -> " << last;
  }
}

TEST(SamPretrain, MaskClassLossAveragesBackgroundAndMarkedPixelsAndReadsEachImage) {
  // With the class head's weights zero, every pixel's logits are its bias: the cross entropy of
  // a background pixel is -log p0, of a marked pixel of class c -log pc, and the loss averages
  // the two means whatever the pixel counts.
  const auto cfg = testing::tiny_stage1_config();
  torch::manual_seed(2);
  auto model = models::build_model(cfg.model);
  model->add_encoder_pretrain_head(config::Branch::kSam, 3);
  ASSERT_FALSE(model->sam_pretrain_classes.is_empty());
  const int64_t s = cfg.model.sam.image_size;
  auto masks = torch::full({2, s, s}, 3, torch::kLong);  // anatomy everywhere
  masks[0].slice(0, 4, 9).slice(1, 20, 30).fill_(10);    // row 0: one lesion (id 10) of 50 pixels
  masks[1].slice(0, 0, 2).fill_(9);                      // row 1: id 9, below first_id
  models::ImageInputs images;
  images.sam_pixels = torch::randn({2, 3, s, s});
  losses::SamPretrainOptions options;
  options.points = 4;
  options.classes = losses::MaskClassTargets{torch::tensor({2, 1}, torch::kLong), 10, 0.5};
  const auto loss_for = [&](std::vector<float> bias) {
    torch::NoGradGuard no_grad;
    model->sam_pretrain_classes->weight.zero_();
    model->sam_pretrain_classes->bias.copy_(torch::tensor(bias));
    return losses::sam_pretrain_loss(*model, images, masks, 7, options);
  };
  const auto log_softmax = [](std::vector<double> b, size_t c) {
    double z = 0;
    for (double v : b) z += std::exp(v);
    return b[c] - std::log(z);
  };
  auto l = loss_for({2, 0, 1});
  EXPECT_NEAR(l.mask_class.item<double>(), -0.5 * (log_softmax({2, 0, 1}, 0) + log_softmax({2, 0, 1}, 2)), 1e-5);
  EXPECT_NEAR(l.total.item<double>(), l.mask.item<double>() + 0.5 * l.mask_class.item<double>(), 1e-5);
  // Read per image with marked pixels (row 0 only; row 1's id 9 is below first_id): the class
  // of the largest probability mass other than background, here class 2 (bias 1 > 0).
  EXPECT_DOUBLE_EQ(l.image_accuracy, 1.0);
  EXPECT_DOUBLE_EQ(loss_for({5, 1, 0}).image_accuracy, 0.0);
  // Turned by the square's symmetries (each row's image with its mask), the pixels keep their
  // classes: with the head's bias alone the class loss is the same.
  options.turns = 7;
  EXPECT_NEAR(loss_for({2, 0, 1}).mask_class.item<double>(), l.mask_class.item<double>(), 1e-5);
  options.turns = 0;
  // Marked positions are averaged per image, then over images: row 1 with a lesion of class 1
  // over 2 rows of the grid weighs as much as row 0's lesion of class 2 (the two means averaged).
  masks[1].slice(0, 0, 2).fill_(11);
  EXPECT_NEAR(loss_for({2, 0, 1}).mask_class.item<double>(),
              -0.5 * (log_softmax({2, 0, 1}, 0) + 0.5 * (log_softmax({2, 0, 1}, 2) + log_softmax({2, 0, 1}, 1))), 1e-5);
  masks[1].slice(0, 0, 2).fill_(9);
  // The class loss trains the SAM encoder (through a head with weights).
  {
    torch::NoGradGuard no_grad;
    model->sam_pretrain_classes->weight.normal_(0, 0.1);
  }
  model->zero_grad();
  losses::sam_pretrain_loss(*model, images, masks, 7, options).mask_class.backward();
  const auto g = model->sam_model->parameters().front().grad();
  ASSERT_TRUE(g.defined());
  EXPECT_GT(g.abs().sum().item<double>(), 0);
  // One class per image, or a clear error.
  options.classes->classes = torch::tensor({1}, torch::kLong);
  EXPECT_THROW(losses::sam_pretrain_loss(*model, images, masks, 7, options), Error);
}

TEST(SamPretrain, PlaceLossNamesTheCellOfTheTurnedImageEachMarkedPositionLiesIn) {
  // places {2, 1}: two cells, the left and the right half. With the place head's weights zero a
  // marked position's logits are the bias, so its cross entropy is -log p(its cell); each image's
  // marked positions are averaged, then the images with any.
  const auto cfg = testing::tiny_stage1_config();
  torch::manual_seed(4);
  auto model = models::build_model(cfg.model);
  model->add_encoder_pretrain_head(config::Branch::kSam, 3, 2);
  ASSERT_FALSE(model->sam_pretrain_places.is_empty());
  const int64_t s = cfg.model.sam.image_size;  // 64 px, a grid of 8
  auto masks = torch::full({2, s, s}, 3, torch::kLong);
  masks[0].slice(0, 4, 12).slice(1, 0, 16).fill_(10);    // row 0: a lesion on the left (2 grid columns)
  masks[1].slice(0, 40, 48).slice(1, 24, 40).fill_(11);  // row 1: across the middle (columns 3 and 4)
  models::ImageInputs images;
  images.sam_pixels = torch::randn({2, 3, s, s});
  losses::SamPretrainOptions options;
  options.classes = losses::MaskClassTargets{torch::tensor({1, 2}, torch::kLong), 10, 0.5, 2.0, {2, 1}};
  torch::NoGradGuard no_grad;
  model->sam_pretrain_places->weight.zero_();
  model->sam_pretrain_places->bias.copy_(torch::tensor({1.5, -0.5}));
  const double left = -(1.5 - std::log(std::exp(1.5) + std::exp(-0.5)));
  const double right = -(-0.5 - std::log(std::exp(1.5) + std::exp(-0.5)));
  auto l = losses::sam_pretrain_loss(*model, images, masks, 3, options);
  EXPECT_NEAR(l.mask_place.item<double>(), 0.5 * (left + 0.5 * (left + right)), 1e-5);
  EXPECT_NEAR(l.total.item<double>(),
              l.mask.item<double>() + 0.5 * l.mask_class.item<double>() + 2.0 * l.mask_place.item<double>(), 1e-5);
  // Flipped left-right, row 0's lesion lies on the right of the image the encoder sees.
  uint64_t seed = 0;
  while (losses::square_turn(seed, 0, 1) != 1 || losses::square_turn(seed, 1, 1) != 0) ++seed;
  options.turns = 1;
  EXPECT_NEAR(losses::sam_pretrain_loss(*model, images, masks, seed, options).mask_place.item<double>(),
              0.5 * (right + 0.5 * (left + right)), 1e-5);
  // No marked position, no place loss; without places, none computed.
  options.turns = 0;
  EXPECT_NEAR(losses::sam_pretrain_loss(*model, images, torch::full({2, s, s}, 3, torch::kLong), 3, options)
                  .mask_place.item<double>(),
              0.0, 1e-12);
  options.classes->places = {0, 0};
  EXPECT_FALSE(losses::sam_pretrain_loss(*model, images, masks, 3, options).mask_place.defined());
  // A head of another size than places is refused.
  options.classes->places = {3, 1};
  EXPECT_THROW(losses::sam_pretrain_loss(*model, images, masks, 3, options), Error);
}

TEST(SamPretrain, MasksLargerThanFourTimesTheGridAreShrunkKeepingTheLargestId) {
  // The tiny SAM reads 64 px in 8 px patches: a grid of 8, masks predicted at 32 x 32. A 64 px
  // mask gives the loss of the 32 px mask made by hand, in which each cell keeps the largest id
  // it covers, so a one-pixel lesion (id 12 over anatomy 3) is still there to be prompted.
  const auto cfg = testing::tiny_stage1_config();
  ASSERT_EQ(cfg.model.sam.image_size, 64);
  ASSERT_EQ(cfg.model.sam.patch_size, 8);
  torch::manual_seed(3);
  auto model = models::build_model(cfg.model);
  model->add_encoder_pretrain_head(config::Branch::kSam, 0);
  auto big = torch::full({2, 64, 64}, 3, torch::kLong);
  big[0][9][13] = 12;
  big[1].slice(0, 40, 64).fill_(5);
  auto small = torch::full({2, 32, 32}, 3, torch::kLong);
  small[0][4][6] = 12;
  small[1].slice(0, 20, 32).fill_(5);
  models::ImageInputs images;
  images.sam_pixels = torch::randn({2, 3, 64, 64});
  losses::SamPretrainOptions options;
  options.points = 16;
  torch::NoGradGuard no_grad;
  const auto from_big = losses::sam_pretrain_loss(*model, images, big, 5, options).mask.item<double>();
  const auto from_small = losses::sam_pretrain_loss(*model, images, small, 5, options).mask.item<double>();
  EXPECT_NEAR(from_big, from_small, 1e-6);
  // Without the lesion, row 0's prompts all fall on the anatomy: another loss.
  small[0][4][6] = 3;
  EXPECT_GT(std::abs(losses::sam_pretrain_loss(*model, images, small, 5, options).mask.item<double>() - from_big),
            1e-4);
}

TEST(SamPretrain, TurnsAreDrawnFromTheNamedOnesAndTurnEachImageWithItsMask) {
  // square_turn sets only the bits it is given, each in about half of the rows.
  for (const int turns : {0, 2, 3, 7}) {
    std::vector<int> seen(8, 0);
    for (int64_t row = 0; row < 400; ++row) {
      const int code = losses::square_turn(11, row, turns);
      ASSERT_EQ(code & ~turns, 0) << turns;
      ++seen[static_cast<size_t>(code)];
    }
    for (int code = 0; code < 8; ++code)
      if ((code & ~turns) == 0) {
        const int allowed = 1 << __builtin_popcount(static_cast<unsigned>(turns));
        EXPECT_NEAR(seen[static_cast<size_t>(code)], 400.0 / allowed, 4 * std::sqrt(400.0 / allowed)) << turns << code;
      }
  }
  EXPECT_THROW(losses::square_turn(1, 0, 8), Error);
  // The loss with turns equals the loss without them on images and masks turned by hand, row by
  // row, with the codes square_turn draws: the pixels and their mask turn together.
  const auto cfg = testing::tiny_stage1_config();
  torch::manual_seed(5);
  auto model = models::build_model(cfg.model);
  model->add_encoder_pretrain_head(config::Branch::kSam, 0);
  const int64_t s = cfg.model.sam.image_size;
  auto masks = torch::full({4, s, s}, 3, torch::kLong);
  for (int64_t i = 0; i < 4; ++i) masks[i].slice(0, 2 + 3 * i, 9 + 3 * i).slice(1, 4 * i, 6 + 5 * i).fill_(10 + i);
  models::ImageInputs images;
  images.sam_pixels = torch::randn({4, 3, s, s});
  losses::SamPretrainOptions options;
  options.points = 4;
  torch::NoGradGuard no_grad;
  // Larger weights than at initialisation, so the decoder's masks differ from place to place and
  // the loss tells where the targets lie.
  for (auto& p : model->sam_pretrain_decoder->parameters()) p.mul_(4);
  for (const int turns : {2, 7}) {
    options.turns = turns;
    const double turned = losses::sam_pretrain_loss(*model, images, masks, 9, options).mask.item<double>();
    std::vector<torch::Tensor> by_hand_masks, by_hand_pixels;
    for (int64_t i = 0; i < 4; ++i) {
      const int code = losses::square_turn(9, i, turns);
      by_hand_masks.push_back(losses::turn_square(masks[i], code));
      by_hand_pixels.push_back(losses::turn_square(images.sam_pixels[i], code));
    }
    models::ImageInputs by_hand;
    by_hand.sam_pixels = torch::stack(by_hand_pixels);
    options.turns = 0;
    const double expected =
        losses::sam_pretrain_loss(*model, by_hand, torch::stack(by_hand_masks), 9, options).mask.item<double>();
    EXPECT_NEAR(turned, expected, 1e-5) << turns;
    // ... and not the loss of the unturned rows (some row was turned).
    EXPECT_GT(std::abs(turned - losses::sam_pretrain_loss(*model, images, masks, 9, options).mask.item<double>()), 1e-4)
        << turns;
  }
}

TEST(SamPretrain, TurnSquareIsTheSquaresEightSymmetries) {
  const auto x = torch::arange(9).view({1, 3, 3});
  EXPECT_TRUE(losses::turn_square(x, 0).equal(x));
  EXPECT_TRUE(losses::turn_square(x, 1).equal(torch::tensor({2, 1, 0, 5, 4, 3, 8, 7, 6}).view({1, 3, 3})));
  EXPECT_TRUE(losses::turn_square(x, 2).equal(torch::tensor({6, 7, 8, 3, 4, 5, 0, 1, 2}).view({1, 3, 3})));
  EXPECT_TRUE(losses::turn_square(x, 4).equal(torch::tensor({0, 3, 6, 1, 4, 7, 2, 5, 8}).view({1, 3, 3})));
  // Eight different results: the group of the square, each code once.
  for (int a = 0; a < 8; ++a)
    for (int b = a + 1; b < 8; ++b) EXPECT_FALSE(losses::turn_square(x, a).equal(losses::turn_square(x, b))) << a << b;
  EXPECT_THROW(losses::turn_square(x, 8), Error);
  EXPECT_THROW(losses::turn_square(torch::zeros({2, 3}), 1), Error);
}

}  // namespace
}  // namespace msmedcap
