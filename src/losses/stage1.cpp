#include "msmedcap/losses/stage1.h"

#include <torch/torch.h>

#include <algorithm>

#include "msmedcap/core/check.h"
#include "msmedcap/losses/itc.h"
#include "msmedcap/losses/itg.h"
#include "msmedcap/losses/itm.h"

namespace msmedcap::losses {

torch::Tensor token_mean_over_ranks(const torch::Tensor& loss, const torch::Tensor& labels,
                                    const Collectives& collectives) {
  if (collectives.world_size <= 1 || !collectives.sum) return loss;
  const int64_t count = labels.narrow(1, 1, labels.size(1) - 1).ne(kIgnoreIndex).sum().item<int64_t>();
  const double total = collectives.sum(static_cast<double>(count));
  return loss * (static_cast<double>(count) * static_cast<double>(collectives.world_size) / std::max(total, 1.0));
}

Stage1Losses stage1_losses(models::MsMedCapModelImpl& model, config::Branch branch, const Stage1Batch& batch,
                           int64_t dec_id, uint64_t seed, const Collectives& collectives) {
  namespace F = torch::nn::functional;
  const auto identity = [](const torch::Tensor& t) { return t; };
  const auto gather = collectives.gather ? collectives.gather : identity;
  const auto gather_with_grad = collectives.gather_with_grad ? collectives.gather_with_grad : identity;
  auto heads = model.heads(branch);  // holders: copies share the modules
  models::QFormerModel qformer = model.qformer_of(branch);
  const torch::Tensor& query_tokens = model.query_tokens_of(branch);

  torch::Tensor image;  // [B, M, Dc]; the frozen encoder runs without gradient
  {
    torch::NoGradGuard no_grad;
    image = model.image_tokens(branch, batch.images);
  }
  const int64_t b = image.size(0);
  MSMEDCAP_CHECK(
      batch.text_ids.dim() == 2 && batch.text_ids.size(0) == b && batch.text_mask.sizes() == batch.text_ids.sizes(),
      "stage 1: ", b, " images but text ids ", batch.text_ids.sizes(), " and mask ", batch.text_mask.sizes());
  // ITM gathers the ranks' texts, so every rank pads its [B, T] to the longest T of all (padding
  // is masked everywhere, so the losses do not change).
  torch::Tensor text_ids = batch.text_ids, text_mask = batch.text_mask;
  if (collectives.world_size > 1) {
    const int64_t longest =
        gather(torch::tensor({text_ids.size(1)}, torch::kLong).to(text_ids.device())).max().item<int64_t>();
    if (longest > text_ids.size(1)) {
      text_ids = F::pad(text_ids, F::PadFuncOptions({0, longest - text_ids.size(1)}));
      text_mask = F::pad(text_mask, F::PadFuncOptions({0, longest - text_mask.size(1)}));
    }
  }
  const auto queries = query_tokens.expand({b, -1, -1});  // [B, Nq, D]

  // ITC: queries alone (keys/values recorded for ITG) and the text alone.
  // The image keys/values of every cross-attention layer, computed once: ITM's 3B rows repeat
  // these images (twice as positives, once as hard negatives) and gather from them.
  const auto image_kv = qformer->image_keys_values(image);
  models::QFormerCache cache;
  const auto query_out = qformer->forward_kv(queries, image_kv, &cache);  // [B, Nq, D]
  const auto image_feats =
      F::normalize(heads.vision_projection(query_out), F::NormalizeFuncOptions().dim(-1));  // [B, Nq, E]
  const auto text_out = qformer->encode_text(text_ids, text_mask);                          // [B, T, D]
  const auto text_feat = F::normalize(heads.text_projection(text_out.select(1, 0)), F::NormalizeFuncOptions().dim(-1));
  // Gathered with gradient: LAVIS gathers these without it, which keeps the full gradient on one
  // process but drops the other ranks' share on several; here N processes equal one.
  const auto image_feats_all = gather_with_grad(image_feats);  // [B*W, Nq, E]
  const auto text_feat_all = gather_with_grad(text_feat);      // [B*W, E]
  torch::Tensor ids_all, keys_all;
  const auto keys =
      batch.keys.defined()
          ? batch.keys.to(torch::kLong)
          : torch::arange(collectives.rank * b, (collectives.rank + 1) * b, torch::kLong).to(image.device());
  {
    torch::NoGradGuard no_grad;
    if (batch.image_ids.defined()) ids_all = gather(batch.image_ids);
    keys_all = gather(keys);
  }
  const ItcResult itc = itc_loss(image_feats, text_feat, image_feats_all, text_feat_all, heads.temp, collectives.rank,
                                 0.1, batch.image_ids, ids_all);

  // ITM: [positive pairs, (text, hard image), (image, hard text)].
  const auto positives =
      itc_positives(b, text_feat_all.size(0), collectives.rank, batch.image_ids, ids_all, image.device());
  const HardNegatives neg = sample_hard_negatives(itc.sim_i2t, itc.sim_t2i, positives, seed, keys, keys_all);
  const auto image_world = gather_with_grad(image);
  torch::Tensor ids_world, mask_world;
  {
    torch::NoGradGuard no_grad;
    ids_world = gather(text_ids);
    mask_world = gather(text_mask);
  }
  const auto itm_ids = torch::cat({text_ids, text_ids, ids_world.index_select(0, neg.text_index)});
  const auto itm_mask = torch::cat({text_mask, text_mask, mask_world.index_select(0, neg.text_index)});
  // One process: the hard-negative images are this batch's, whose keys/values are at hand;
  // several: those of the B chosen images from the gathered batch are computed.
  const auto negative_kv = collectives.world_size > 1
                               ? qformer->image_keys_values(image_world.index_select(0, neg.image_index))
                               : image_kv.select(neg.image_index);
  const auto itm_kv = models::QFormerImageKv::cat({image_kv, negative_kv, image_kv});
  const auto itm_out = qformer->forward_multimodal(query_tokens.expand({3 * b, -1, -1}), itm_ids, itm_mask, itm_kv);
  const auto itm_logits = heads.itm_head(itm_out.narrow(1, 0, queries.size(1))).mean(1);  // [3B, 2]

  // ITG: [DEC]-started text, causal, seeing the queries through the ITC pass's keys/values.
  const auto [dec_ids, labels] = itg_inputs(text_ids, text_mask, dec_id);
  const auto itg_logits = qformer->lm_logits(qformer->decode_text(dec_ids, text_mask, cache));

  Stage1Losses out;
  out.itc = itc.loss;
  out.itm = itm_loss(itm_logits);
  // A mean over this rank's tokens; rescaled so that ranks with more text do not weigh less.
  out.itg = token_mean_over_ranks(next_token_loss(itg_logits, labels, 0.1), labels, collectives);
  out.total = out.itc + out.itm + out.itg;
  return out;
}

}  // namespace msmedcap::losses
