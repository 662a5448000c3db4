#include "msmedcap/inference/retrieval.h"

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include <algorithm>
#include <random>

#include "msmedcap/core/check.h"
#include "msmedcap/core/error_text.h"
#include "msmedcap/data/loader.h"
#include "msmedcap/data/text_batch.h"

namespace msmedcap::inference {
namespace {

at::Tensor l2_normalize(const at::Tensor& x) { return x / x.norm(2, -1, true).clamp_min(1e-12); }

/// ITM match logits (class 1) of pairs: image rows `images` [K, M, Dc] with text rows [K, T].
at::Tensor itm_match(models::MsMedCapModelImpl& model, config::Branch branch, const at::Tensor& images,
                     const at::Tensor& ids, const at::Tensor& mask) {
  auto heads = model.heads(branch);  // holders: copies share the modules
  auto qformer = model.qformer_of(branch);
  const auto& query_tokens = model.query_tokens_of(branch);
  const int64_t k = images.size(0), nq = query_tokens.size(1);
  const auto out = qformer->forward_multimodal(query_tokens.expand({k, -1, -1}), ids, mask, images);
  return heads.itm_head->forward(out.narrow(1, 0, nq)).mean(1).select(1, 1);  // [K]
}

/// Re-ranks each row of `sim` [R, C]: its top k columns get ITM + ITC, the rest -100.
at::Tensor rerank(const at::Tensor& sim, int64_t k, const std::function<at::Tensor(int64_t, const at::Tensor&)>& itm) {
  auto out = at::full_like(sim, -100.0);
  const int64_t top = std::min(k, sim.size(1));
  for (int64_t r = 0; r < sim.size(0); ++r) {
    const auto best = sim[r].topk(top);
    const auto cols = std::get<1>(best);
    out[r].index_put_({cols}, itm(r, cols).to(sim.dtype()) + std::get<0>(best));
  }
  return out;
}

}  // namespace

RetrievalSet encode_retrieval_set(models::MsMedCapModelImpl& model, config::Branch branch,
                                  const std::vector<data::Sample>& samples, config::ImageTransformConfig transform,
                                  const data::TextTokenizer& tokenizer, int64_t max_len, int64_t batch) {
  c10::InferenceMode no_grad;
  transform.augment = false;
  transform.hflip = false;
  data::ExampleOptions eo;
  const bool sam = branch == config::Branch::kSam;
  eo.clip = !sam;
  eo.sam = sam;
  const auto process = data::make_example_processor(transform, eo);
  const auto device = model.parameters().front().device();
  RetrievalSet set;
  std::vector<at::Tensor> tokens, pending;
  std::vector<std::string> texts;
  std::mt19937_64 rng(0);  // no augmentation: unused
  auto flush = [&] {
    if (pending.empty()) return;
    models::ImageInputs inputs;
    (sam ? inputs.sam_pixels : inputs.clip_pixels) = at::stack(pending).to(device);
    tokens.push_back(model.image_tokens(branch, inputs));
    pending.clear();
  };
  for (const auto& s : samples) {
    data::Example ex;
    try {
      ex = process(s, rng);
    } catch (const std::exception& e) {
      set.unreadable.push_back(s.id + ": " + core::error_text(e));
      continue;
    }
    pending.push_back(sam ? ex.sam : ex.clip);
    for (const auto& c : s.captions) {
      texts.push_back(c);
      set.text_image.push_back(set.images);
    }
    ++set.images;
    if (static_cast<int64_t>(pending.size()) == batch) flush();
  }
  flush();
  MSMEDCAP_CHECK(set.images > 0, "retrieval: no readable images");
  const auto text = data::qformer_text_batch(tokenizer, texts, max_len);
  set.inputs = RetrievalInputs{at::cat(tokens), text.ids.to(device), text.mask.to(device)};
  return set;
}

RetrievalScores retrieval_scores(models::MsMedCapModelImpl& model, config::Branch branch, const RetrievalInputs& in,
                                 int64_t rerank_k, int64_t batch) {
  c10::InferenceMode no_grad;
  MSMEDCAP_CHECK(in.image_tokens.dim() == 3 && in.text_ids.dim() == 2 && in.text_mask.sizes() == in.text_ids.sizes(),
                 "retrieval: expected image tokens [Ni, M, D] and text [Nt, T], got ", in.image_tokens.sizes(), " and ",
                 in.text_ids.sizes());
  auto heads = model.heads(branch);  // holders: copies share the modules
  auto qformer = model.qformer_of(branch);
  const auto& query_tokens = model.query_tokens_of(branch);
  const int64_t ni = in.image_tokens.size(0), nt = in.text_ids.size(0);
  std::vector<at::Tensor> image_feats, text_feats;
  for (int64_t s = 0; s < ni; s += batch) {
    const auto img = in.image_tokens.slice(0, s, std::min(ni, s + batch));
    const auto q = qformer->forward(query_tokens.expand({img.size(0), -1, -1}), img);
    image_feats.push_back(l2_normalize(heads.vision_projection->forward(q)));  // [b, Nq, E]
  }
  for (int64_t s = 0; s < nt; s += batch) {
    const auto ids = in.text_ids.slice(0, s, std::min(nt, s + batch));
    const auto mask = in.text_mask.slice(0, s, std::min(nt, s + batch));
    text_feats.push_back(l2_normalize(heads.text_projection->forward(qformer->encode_text(ids, mask).select(1, 0))));
  }
  const auto img = at::cat(image_feats);                               // [Ni, Nq, E]
  const auto txt = at::cat(text_feats);                                // [Nt, E]
  const auto sim_i2t = at::matmul(img, txt.t().unsqueeze(0)).amax(1);  // [Ni, Nt]: best query per pair
  RetrievalScores out{sim_i2t, sim_i2t.t().contiguous()};
  if (rerank_k <= 0) return out;
  out.i2t = rerank(sim_i2t, rerank_k, [&](int64_t i, const at::Tensor& texts) {
    const int64_t k = texts.size(0);
    return itm_match(model, branch, in.image_tokens[i].unsqueeze(0).expand({k, -1, -1}),
                     in.text_ids.index_select(0, texts), in.text_mask.index_select(0, texts));
  });
  out.t2i = rerank(out.t2i, rerank_k, [&](int64_t t, const at::Tensor& images) {
    const int64_t k = images.size(0);
    return itm_match(model, branch, in.image_tokens.index_select(0, images),
                     in.text_ids[t].unsqueeze(0).expand({k, -1}), in.text_mask[t].unsqueeze(0).expand({k, -1}));
  });
  return out;
}

std::map<std::string, double> retrieval_recall(const RetrievalScores& scores, const std::vector<int64_t>& text_image) {
  const auto i2t = scores.i2t.to(at::kDouble).cpu(), t2i = scores.t2i.to(at::kDouble).cpu();
  const int64_t ni = i2t.size(0), nt = i2t.size(1);
  MSMEDCAP_CHECK(static_cast<int64_t>(text_image.size()) == nt && t2i.size(0) == nt && t2i.size(1) == ni,
                 "retrieval: ", text_image.size(), " text-image links for scores ", i2t.sizes(), " and ", t2i.sizes());
  // The 0-based rank of `target` columns in a row sorted by descending score (ties: lower index first).
  auto rank_of = [](const at::Tensor& row, const std::vector<int64_t>& targets) {
    const auto order = std::get<1>(row.sort(/*stable=*/true, /*dim=*/0, /*descending=*/true));
    const auto* o = order.data_ptr<int64_t>();
    for (int64_t r = 0; r < order.size(0); ++r)
      if (std::find(targets.begin(), targets.end(), o[r]) != targets.end()) return r;
    return order.size(0);
  };
  std::vector<std::vector<int64_t>> texts_of(static_cast<size_t>(ni));
  for (int64_t t = 0; t < nt; ++t) {
    MSMEDCAP_CHECK(text_image[t] >= 0 && text_image[t] < ni, "retrieval: text ", t, " names image ", text_image[t]);
    texts_of[static_cast<size_t>(text_image[t])].push_back(t);
  }
  std::vector<int64_t> txt_ranks, img_ranks;
  for (int64_t i = 0; i < ni; ++i) txt_ranks.push_back(rank_of(i2t[i].contiguous(), texts_of[static_cast<size_t>(i)]));
  for (int64_t t = 0; t < nt; ++t) img_ranks.push_back(rank_of(t2i[t].contiguous(), {text_image[t]}));
  auto recall = [](const std::vector<int64_t>& ranks, int64_t k) {
    const auto hits = std::count_if(ranks.begin(), ranks.end(), [k](int64_t r) { return r < k; });
    return 100.0 * static_cast<double>(hits) / static_cast<double>(ranks.size());
  };
  std::map<std::string, double> m;
  for (int64_t k : {1, 5, 10}) {
    m["txt_r" + std::to_string(k)] = recall(txt_ranks, k);
    m["img_r" + std::to_string(k)] = recall(img_ranks, k);
  }
  m["txt_r_mean"] = (m["txt_r1"] + m["txt_r5"] + m["txt_r10"]) / 3;
  m["img_r_mean"] = (m["img_r1"] + m["img_r5"] + m["img_r10"]) / 3;
  m["r_mean"] = (m["txt_r_mean"] + m["img_r_mean"]) / 2;
  return m;
}

}  // namespace msmedcap::inference
