#pragma once
/// Analytic floating-point operation counts of the models' forward passes, for benchmarks'
/// achieved GFLOP/s and model FLOP utilisation. Counted as MFU accounting does (PaLM appendix B,
/// Megatron): matrix products and convolutions only, 2 FLOPs per multiply-add; norms, softmax,
/// activations and other elementwise work are left out. A training step is forward + backward:
/// a trainable block costs 3x its forward (input and weight gradients), a frozen block that
/// gradients pass through 2x (input gradients only), a frozen block before every trainable one 1x.
/// Torch-free: only configs.

#include <cstdint>

#include "msmedcap/config/model_config.h"
#include "msmedcap/config/train_config.h"

namespace msmedcap::models::flops {

/// rows x in -> rows x out: 2 * rows * in * out.
double linear(int64_t rows, int64_t in, int64_t out);

/// softmax(q k^T) v for `batch` sequences of `queries` queries over `keys` keys, heads * Dh =
/// `width`: 4 * batch * queries * keys * width.
double attention(int64_t batch, int64_t queries, int64_t keys, int64_t width);

/// The CLIP/EVA ViT (vision_model) on `batch` images at cfg.image_size.
double vision(const config::VisionConfig& cfg, int64_t batch);

/// The SAM ViT (sam_model.vision_encoder) on `batch` images: patch embedding, windowed and
/// global blocks (windowed blocks count their zero padding, which they compute), the decomposed
/// relative positions and the neck.
double sam(const config::SamEncoderConfig& cfg, int64_t batch);

/// One Q-Former pass over `batch` rows.
struct QFormerPass {
  int64_t batch = 1;
  int64_t queries = 0;       ///< query tokens (they cross-attend and use the query feed-forward)
  int64_t text = 0;          ///< text tokens (the text feed-forward)
  int64_t image_tokens = 0;  ///< M, the cross-attended image tokens
  int64_t past = 0;          ///< cached keys seen besides these tokens (ITG: the queries')
  bool lm_head = false;      ///< the ITG head on the text tokens
  /// The pass projects the image tokens to keys/values itself (false: it reuses another pass's,
  /// as stage 1's ITM reuses ITC's; models::QFormerImageKv).
  bool project_image = true;
};
double qformer(const config::QFormerConfig& cfg, const QFormerPass& pass);

/// The decoder on `batch` rows of `tokens` new positions after `past` cached ones, with the LM
/// head on `logit_rows` positions per row (tokens for a training forward, 1 for generation).
double decoder(const config::DecoderConfig& cfg, int64_t batch, int64_t tokens, int64_t past, int64_t logit_rows);

/// Image tokens a branch's Q-Former reads: CLIP patches + class token, or the SAM embeddings
/// as "channels" (output_channels tokens) or "spatial" (h*w tokens).
int64_t image_tokens(const config::ModelConfig& cfg, config::Branch branch);

/// Forward + backward FLOPs of one training step of `stage` on `batch` images with captions of
/// `text` tokens: the frozen encoders' forward where they run live (`live_clip`, `live_sam`; else
/// cached features are read), 3x the trained blocks, 2x the frozen decoder that stage 2 and
/// caption back-propagate through. Stage 1: ITC (queries, text), ITM (3B rows of queries and
/// text, over the ITC pass's image keys/values), ITG (text over the cached query keys) and the
/// heads. Stage 2 / caption: each
/// branch's query pass and projection, then the decoder over [prefix, text] with logits on the
/// text positions (those the loss reads). decoder_lm: the decoder over the text alone.
double training_step(const config::ModelConfig& cfg, const config::StageConfig& stage, int64_t batch, int64_t text,
                     bool live_clip, bool live_sam);

/// FLOPs of captioning `batch` images: `encode` (live encoders as above, the query passes and
/// projections) and `decode`: the prefill over the prefix + `prompt` tokens on `batch` rows
/// (logits of the last position only), then new_tokens - 1 steps of one token on batch * beams
/// rows.
struct GenerationFlops {
  double encode = 0, decode = 0;
};
GenerationFlops generation(const config::ModelConfig& cfg, int64_t batch, int64_t prompt, int64_t new_tokens,
                           int64_t beams, bool live_clip, bool live_sam);

/// Visual prefix length: the query tokens of the branches that are on.
int64_t prefix_tokens(const config::ModelConfig& cfg);

}  // namespace msmedcap::models::flops
