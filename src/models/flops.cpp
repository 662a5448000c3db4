#include "msmedcap/models/flops.h"

#include <algorithm>

namespace msmedcap::models::flops {

namespace {
double d(int64_t v) { return static_cast<double>(v); }
}  // namespace

double linear(int64_t rows, int64_t in, int64_t out) { return 2.0 * d(rows) * d(in) * d(out); }

double attention(int64_t batch, int64_t queries, int64_t keys, int64_t width) {
  return 4.0 * d(batch) * d(queries) * d(keys) * d(width);
}

double vision(const config::VisionConfig& cfg, int64_t batch) {
  const int64_t grid = cfg.image_size / cfg.patch_size, patches = grid * grid, n = patches + 1;
  const int64_t w = cfg.hidden_size, rows = batch * n;
  double total = linear(batch * patches, 3 * cfg.patch_size * cfg.patch_size, w);  // patch conv
  const double layer = linear(rows, w, 3 * w) + linear(rows, w, w) + attention(batch, n, n, w) +
                       linear(rows, w, cfg.intermediate_size) + linear(rows, cfg.intermediate_size, w);
  return total + d(cfg.num_hidden_layers) * layer;
}

double sam(const config::SamEncoderConfig& cfg, int64_t batch) {
  const int64_t g = cfg.image_size / cfg.patch_size, w = cfg.hidden_size;
  double total = linear(batch * g * g, 3 * cfg.patch_size * cfg.patch_size, w);
  for (int64_t i = 0; i < cfg.num_hidden_layers; ++i) {
    const bool global =
        std::find(cfg.global_attn_indexes.begin(), cfg.global_attn_indexes.end(), i) != cfg.global_attn_indexes.end();
    const int64_t side = global ? g : cfg.window_size;                 // attention window side
    const int64_t padded = global ? g : (g + side - 1) / side * side;  // grid after zero padding
    const int64_t windows = batch * (padded / side) * (padded / side), n = side * side;
    const int64_t rows = windows * n;
    total += linear(rows, w, 3 * w) + linear(rows, w, w) + attention(windows, n, n, w);
    if (cfg.use_rel_pos) total += 2.0 * d(windows) * d(n) * d(2 * side) * d(w);  // q . rel_pos_{h,w}
    total += linear(batch * g * g, w, cfg.mlp_dim) + linear(batch * g * g, cfg.mlp_dim, w);
  }
  const int64_t c = cfg.output_channels;
  return total + linear(batch * g * g, w, c) + linear(batch * g * g, 9 * c, c);  // neck 1x1, 3x3
}

double qformer(const config::QFormerConfig& cfg, const QFormerPass& p) {
  const int64_t w = cfg.hidden_size, ff = cfg.intermediate_size, n = p.queries + p.text;
  const int64_t rows = p.batch * n;
  double total = 0;
  for (int64_t i = 0; i < cfg.num_hidden_layers; ++i) {
    total += linear(rows, w, 3 * w) + attention(p.batch, n, p.past + n, w) + linear(rows, w, w);
    if (p.queries > 0) {
      const int64_t q = p.batch * p.queries;
      if (i % cfg.cross_attention_frequency == 0) {
        total += linear(q, w, w) + attention(p.batch, p.queries, p.image_tokens, w) + linear(q, w, w);
        if (p.project_image) total += 2 * linear(p.batch * p.image_tokens, cfg.encoder_hidden_size, w);
      }
      total += linear(q, w, ff) + linear(q, ff, w);
    }
    if (p.text > 0) total += linear(p.batch * p.text, w, ff) + linear(p.batch * p.text, ff, w);
  }
  if (p.lm_head) total += linear(p.batch * p.text, w, w) + linear(p.batch * p.text, w, cfg.vocab_size);
  return total;
}

double decoder(const config::DecoderConfig& cfg, int64_t batch, int64_t tokens, int64_t past, int64_t logit_rows) {
  const int64_t w = cfg.hidden_size, rows = batch * tokens;
  const int64_t kv = cfg.kv_heads() * (w / cfg.num_attention_heads);
  const int64_t mlp_matrices = cfg.arch == "llama" ? 3 : 2;
  const double layer = linear(rows, w, w) + 2 * linear(rows, w, kv) + linear(rows, w, w) +
                       attention(batch, tokens, past + tokens, w) +
                       d(mlp_matrices) * linear(rows, w, cfg.intermediate_size);
  double total = d(cfg.num_hidden_layers) * layer;
  const int64_t e = cfg.embed_dim();
  if (cfg.arch == "opt" && e != w) total += linear(rows, e, w) + linear(rows, w, e);  // project_in/out
  return total + linear(batch * logit_rows, cfg.arch == "opt" ? e : w, cfg.vocab_size);
}

int64_t image_tokens(const config::ModelConfig& cfg, config::Branch branch) {
  if (branch == config::Branch::kClip) {
    const int64_t grid = cfg.vision.image_size / cfg.vision.patch_size;
    return grid * grid + 1;
  }
  const int64_t grid = cfg.sam.image_size / cfg.sam.patch_size;
  return cfg.sam_tokens == "channels" ? cfg.sam.output_channels : grid * grid;
}

int64_t prefix_tokens(const config::ModelConfig& cfg) {
  return (cfg.use_clip ? cfg.qformer.num_query_tokens : 0) + (cfg.use_sam ? cfg.sam_qformer.num_query_tokens : 0);
}

namespace {
/// Frozen encoders (live only) + each enabled branch's query pass and language projection.
struct PrefixFlops {
  double encoders = 0, trainable = 0;
};
PrefixFlops prefix_flops(const config::ModelConfig& cfg, int64_t batch, bool live_clip, bool live_sam) {
  PrefixFlops f;
  const int64_t e = cfg.decoder.embed_dim();
  if (cfg.use_clip) {
    if (live_clip) f.encoders += vision(cfg.vision, batch);
    const auto& q = cfg.qformer;
    f.trainable += qformer(q, {batch, q.num_query_tokens, 0, image_tokens(cfg, config::Branch::kClip)}) +
                   linear(batch * q.num_query_tokens, q.hidden_size, e);
  }
  if (cfg.use_sam) {
    if (live_sam) f.encoders += sam(cfg.sam, batch);
    const auto& q = cfg.sam_qformer;
    f.trainable += qformer(q, {batch, q.num_query_tokens, 0, image_tokens(cfg, config::Branch::kSam)}) +
                   linear(batch * q.num_query_tokens, q.hidden_size, e);
  }
  return f;
}
}  // namespace

double training_step(const config::ModelConfig& cfg, const config::StageConfig& stage, int64_t batch, int64_t text,
                     bool live_clip, bool live_sam) {
  const config::Stage id = stage.id();
  if (id == config::Stage::kDecoderLm) return 3 * decoder(cfg.decoder, batch, text, 0, text);
  if (id == config::Stage::kSamPretrain) return 3 * sam(cfg.sam, batch);  // the decoder is small beside it
  if (id == config::Stage::kClipPretrain) {  // the ViT and the text path, forward and backward
    const auto& q = cfg.qformer;
    return 3 * (vision(cfg.vision, batch) + qformer(q, {batch, 0, text, 0}) +
                linear(batch, cfg.vision.hidden_size, cfg.embed_dim) + linear(batch, q.hidden_size, cfg.embed_dim));
  }
  if (const auto branch = config::stage1_branch(id)) {
    const bool sam_branch = *branch == config::Branch::kSam;
    const auto& q = sam_branch ? cfg.sam_qformer : cfg.qformer;
    const int64_t nq = q.num_query_tokens, m = image_tokens(cfg, *branch), w = q.hidden_size;
    const double encoder =
        sam_branch ? (live_sam ? sam(cfg.sam, batch) : 0) : (live_clip ? vision(cfg.vision, batch) : 0);
    const double trained = qformer(q, {batch, nq, 0, m}) + qformer(q, {batch, 0, text, 0}) +
                           qformer(q, {3 * batch, nq, text, m, 0, false, false}) +
                           qformer(q, {batch, 0, text, 0, nq, true}) + linear(batch * nq, w, cfg.embed_dim) +
                           linear(batch, w, cfg.embed_dim) + linear(3 * batch * nq, w, 2);
    return encoder + 3 * trained;
  }
  const auto prefix = prefix_flops(cfg, batch, live_clip, live_sam);
  const int64_t p = prefix_tokens(cfg);
  const double lm = decoder(cfg.decoder, batch, p + text, 0, text);
  const double vision_trained =
      id == config::Stage::kCaption && stage.train_vision && live_clip ? 2 * vision(cfg.vision, batch) : 0;
  return prefix.encoders + vision_trained + 3 * prefix.trainable + (stage.train_llm ? 3 : 2) * lm;
}

GenerationFlops generation(const config::ModelConfig& cfg, int64_t batch, int64_t prompt, int64_t new_tokens,
                           int64_t beams, bool live_clip, bool live_sam) {
  GenerationFlops g;
  const auto prefix = prefix_flops(cfg, batch, live_clip, live_sam);
  g.encode = prefix.encoders + prefix.trainable;
  const int64_t p = prefix_tokens(cfg) + prompt;
  g.decode = decoder(cfg.decoder, batch, p, 0, 1);
  for (int64_t s = 1; s < new_tokens; ++s) g.decode += decoder(cfg.decoder, batch * beams, 1, p + s - 1, 1);
  return g;
}

}  // namespace msmedcap::models::flops
