#pragma once
/// Image-text retrieval with a stage-1 Q-Former, as LAVIS's compute_sim_matrix and
/// _report_metrics: ITC similarity (the best of the queries), optionally re-ranked by ITM over
/// each row's top k (ITM match logit + ITC similarity; the rest -100), and recall at K both ways.

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "msmedcap/config/data_config.h"
#include "msmedcap/data/datasets.h"
#include "msmedcap/data/tokenizer.h"
#include "msmedcap/models/msmedcap.h"

namespace msmedcap::inference {

/// One branch's stage-1 encodings of a set of images and texts.
struct RetrievalInputs {
  at::Tensor image_tokens;  ///< [Ni, M, Dc] the frozen encoder's tokens (what the Q-Former reads)
  at::Tensor text_ids;      ///< [Nt, T] WordPiece [CLS] ... [SEP]
  at::Tensor text_mask;     ///< [Nt, T]
};

/// A dataset encoded for retrieval: `inputs` plus each text's image.
struct RetrievalSet {
  RetrievalInputs inputs;
  std::vector<int64_t> text_image;      ///< text t describes image text_image[t]
  int64_t images = 0;                   ///< readable images (rows of inputs.image_tokens)
  std::vector<std::string> unreadable;  ///< "id: reason" of the images left out
};

/// Encodes `samples` for `branch`: the frozen encoder's tokens of every readable image (in
/// batches of `batch`, transforms without augmentation) and every caption as Q-Former text of at
/// most `max_len` tokens. Throws when no image can be read.
RetrievalSet encode_retrieval_set(models::MsMedCapModelImpl& model, config::Branch branch,
                                  const std::vector<data::Sample>& samples, config::ImageTransformConfig transform,
                                  const data::TextTokenizer& tokenizer, int64_t max_len, int64_t batch);

struct RetrievalScores {
  at::Tensor i2t;  ///< [Ni, Nt]
  at::Tensor t2i;  ///< [Nt, Ni]
};

/// ITC similarities (and, with rerank_k > 0, ITM re-ranking) of `branch`'s Q-Former.
/// Work is done in chunks of `batch` rows.
RetrievalScores retrieval_scores(models::MsMedCapModelImpl& model, config::Branch branch, const RetrievalInputs& inputs,
                                 int64_t rerank_k, int64_t batch = 32);

/// LAVIS's recall metrics in percent: txt_r1/5/10 (image -> text: the best rank of any of the
/// image's texts), img_r1/5/10 (text -> image), txt_r_mean, img_r_mean, r_mean.
/// text_image[t]: the image of text t.
std::map<std::string, double> retrieval_recall(const RetrievalScores& scores, const std::vector<int64_t>& text_image);

}  // namespace msmedcap::inference
