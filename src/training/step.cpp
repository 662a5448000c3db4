#include "msmedcap/training/step.h"

#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <sstream>

#include "msmedcap/core/check.h"
#include "msmedcap/core/compat.h"
#include "msmedcap/core/hash.h"
#include "msmedcap/core/logging.h"
#include "msmedcap/data/mixture.h"
#include "msmedcap/data/text.h"
#include "msmedcap/data/text_batch.h"
#include "msmedcap/losses/encoder_pretrain.h"
#include "msmedcap/losses/lm.h"
#include "msmedcap/losses/stage1.h"
#include "msmedcap/models/token_grid.h"
#include "msmedcap/models/dropout.h"

namespace msmedcap::training {
namespace {

/// A stable 63-bit id of an image path (FNV-1a), equal in every process.
int64_t image_id_of(const std::string& path) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : path) h = (h ^ c) * 1099511628211ull;
  return static_cast<int64_t>(h >> 1);
}

}  // namespace

config::Json LossBreakdown::to_json() const {
  config::Json j;
  j["loss"] = total;
  if (terms.itc) j["itc"] = itc;
  if (terms.itm) j["itm"] = itm;
  if (terms.itg) j["itg"] = itg;
  if (terms.lm) j["lm"] = lm;
  if (terms.mask) j["mask"] = mask;
  if (terms.mask_class) {
    j["mask_class"] = mask_class;
    j["mask_class_acc"] = mask_class_acc;
  }
  if (terms.mask_place) j["mask_place"] = mask_place;
  return j;
}

std::string LossBreakdown::text() const {
  std::ostringstream s;
  s.precision(4);
  s << total;
  if (terms.itm) s << " (itc " << itc << " itm " << itm << " itg " << itg << ")";
  return s.str();
}

std::vector<double> LossBreakdown::values() const {
  return {total, itc, itm, itg, lm, mask, mask_class, mask_class_acc, mask_place};
}

void LossBreakdown::set_values(const std::vector<double>& v) {
  MSMEDCAP_CHECK(v.size() >= kValues, "LossBreakdown: ", v.size(), " values, expected ", kValues);
  total = v[0];
  itc = v[1];
  itm = v[2];
  itg = v[3];
  lm = v[4];
  mask = v[5];
  mask_class = v[6];
  mask_class_acc = v[7];
  mask_place = v[8];
}

models::ImageInputs mirror_left_right(const models::ImageInputs& images, const at::Tensor& rows) {
  const auto pick = [&](const at::Tensor& x, const at::Tensor& mirrored) {
    MSMEDCAP_CHECK(rows.dim() == 1 && rows.size(0) == x.size(0), "mirror: ", rows.sizes(), " rows for a batch of ",
                   x.size(0));
    std::vector<int64_t> shape(static_cast<size_t>(x.dim()), 1);
    shape[0] = x.size(0);
    return at::where(rows.to(x.device()).view(shape), mirrored, x);
  };
  models::ImageInputs out = images;
  for (auto* t : {&out.clip_pixels, &out.sam_pixels, &out.sam_embeddings})
    if (t->defined()) *t = pick(*t, t->flip({-1}));
  if (out.clip_features.defined()) {
    const auto& x = out.clip_features;  // [B, N, D]
    const int64_t n = x.size(1);
    const auto [first, side] = models::token_grid(n);
    MSMEDCAP_CHECK(side > 0, "mirror: ", n, " CLIP tokens are not a square grid");
    const auto grid = x.narrow(1, first, n - first).reshape({x.size(0), side, side, x.size(2)}).flip({2});
    const auto mirrored = at::cat({x.narrow(1, 0, first), grid.reshape({x.size(0), n - first, x.size(2)})}, 1);
    out.clip_features = pick(x, mirrored);
  }
  return out;
}

at::Tensor mirrored_rows(uint64_t seed, const std::vector<int64_t>& positions) {
  constexpr uint64_t kMirrorSalt = 0x6d6972726f72ULL;  // "mirror"
  auto rows = at::empty({static_cast<int64_t>(positions.size())}, at::kBool);
  auto* r = rows.data_ptr<bool>();
  for (size_t i = 0; i < positions.size(); ++i)
    r[i] = core::keyed_uniform(seed, kMirrorSalt, static_cast<uint64_t>(positions[i])) < 0.5;
  return rows;
}

int64_t agree_batch_size(data::Batch& batch, Communicator& comm) {
  const int64_t n = comm.min(static_cast<int64_t>(batch.samples.size()));
  if (n < static_cast<int64_t>(batch.samples.size())) {
    batch.samples.resize(static_cast<size_t>(n));
    batch.positions.resize(static_cast<size_t>(n));
    if (batch.clip.defined()) batch.clip = batch.clip.narrow(0, 0, n);
    if (batch.sam.defined()) batch.sam = batch.sam.narrow(0, 0, n);
    if (batch.masks.defined()) batch.masks = batch.masks.narrow(0, 0, n);
  }
  return n;
}

StepRunner::StepRunner(models::MsMedCapModelImpl& model, const StagePlan& plan, const config::TrainConfig& train,
                       uint64_t seed, c10::Device device, Communicator& comm, Optimizer& optimizer,
                       std::vector<at::Tensor> params, const data::TextTokenizer* tokenizer, int64_t dec_id)
    : model_(model),
      plan_(plan),
      train_(train),
      seed_(seed),
      device_(device),
      comm_(comm),
      optimizer_(optimizer),
      params_(std::move(params)),
      tokenizer_(tokenizer),
      dec_id_(dec_id),
      collectives_(comm.collectives()),
      scaler_(train.precision == "fp16") {
  MSMEDCAP_CHECK(train.word_dropout == 0 || tokenizer != nullptr,
                 "train.word_dropout: needs the decoder's tokenizer (its unknown token replaces the dropped words)");
  if (!train.mirror_unscored_words.empty()) {
    MSMEDCAP_CHECK(tokenizer != nullptr, "train.mirror_unscored_words: needs the decoder's tokenizer");
    // Each word's token as the captions hold it: after a space (required) and at a text's start.
    std::vector<int64_t> ids;
    for (const auto& word : train.mirror_unscored_words) {
      const auto inside = data::single_token_after_word(*tokenizer, " " + word);
      MSMEDCAP_CHECK(inside.has_value(), "train.mirror_unscored_words: '", word,
                     "' is not a single token of the decoder's tokenizer, so it cannot be left unscored");
      ids.push_back(*inside);
      const auto start = tokenizer->encode(word, false);
      if (start.size() == 1) ids.push_back(start[0]);
    }
    mirror_ids_ = torch::tensor(ids, torch::kLong);
  }
  if (train.precision != "fp32") {
    MSMEDCAP_CHECK(device.is_cuda() || train.precision == "bf16", "train.precision: ", train.precision,
                   " needs a CUDA device (runtime.device is ", device.str(), "); use bf16 or fp32 on the CPU");
    autocast_ = true;
    autocast_dtype_ = train.precision == "bf16" ? c10::kBFloat16 : c10::kHalf;
  }
}

StepInputs StepRunner::inputs(const data::Batch& batch, const data::ExampleOptions& ex) const {
  StepInputs in;
  if (batch.clip.defined()) (ex.clip_cache ? in.images.clip_features : in.images.clip_pixels) = batch.clip.to(device_);
  if (batch.sam.defined()) (ex.sam_cache ? in.images.sam_embeddings : in.images.sam_pixels) = batch.sam.to(device_);
  in.positions = batch.positions;
  std::vector<std::string> captions;
  if (plan_.reads_captions()) {
    for (size_t i = 0; i < batch.samples.size(); ++i) {
      const auto& caps = batch.samples[i].captions;
      MSMEDCAP_CHECK(!caps.empty(), "training step: ", batch.samples[i].image, " has no caption");
      // Several captions per image: one per epoch, keyed by (seed, epoch, position).
      const uint64_t pick =
          data::mix_seed(seed_, static_cast<uint64_t>(batch.epoch), static_cast<uint64_t>(batch.positions[i])) %
          caps.size();
      captions.push_back(train_.clean_captions ? data::clean_caption(caps[pick]) : caps[pick]);
    }
  }
  if (plan_.reads_masks()) {
    MSMEDCAP_CHECK(batch.masks.defined(), "training step: stage ", plan_.name(), " needs the batches' masks");
    in.masks = batch.masks;  // stays on the CPU: the prompts are drawn there
    if (plan_.mask_classes() > 0) {
      std::vector<int64_t> classes;
      for (const auto& caption : captions) classes.push_back(plan_.mask_class(caption));
      in.mask_classes = torch::tensor(classes, torch::kLong);
    }
    return in;
  }
  MSMEDCAP_CHECK(tokenizer_ != nullptr, "training step: no tokenizer to make text inputs with");
  const auto text =
      plan_.tokenizer() == TextTokenizer::kQFormer
          ? data::qformer_text_batch(*tokenizer_, captions, train_.qformer_max_len)
          : data::decoder_text_batch(*tokenizer_, captions, train_.prompt, train_.eos_text, train_.decoder_max_len);
  in.text_ids = text.ids.to(device_);
  in.text_mask = text.mask.to(device_);
  in.prompt_lengths = text.prompt_lengths;
  if (plan_.stage1() && train_.itc_image_ids) {
    std::vector<int64_t> ids;
    for (const auto& s : batch.samples) ids.push_back(image_id_of(s.image));
    in.image_ids = torch::tensor(ids, torch::kLong).to(device_);
  }
  return in;
}

int StepRunner::mask_turns_now() const {
  return progress_ < train_.stage.mask_symmetries_until ? train_.stage.mask_turn_bits() : 0;
}

std::pair<at::Tensor, LossBreakdown> StepRunner::losses(const StepInputs& in, uint64_t seed, bool training) {
  core::AutocastScope autocast(autocast_, autocast_dtype_, device_.type());
  // Dropout masks keyed by (seed, sample position): equal on any number of processes and on resume.
  models::DropoutKeyScope dropout({model_.qformer.is_empty() ? nullptr : model_.qformer->dropout_keys(),
                                   model_.sam_qformer.is_empty() ? nullptr : model_.sam_qformer->dropout_keys()},
                                  seed, in.positions);
  LossBreakdown values;
  values.terms = plan_.losses();
  at::Tensor loss;
  if (const auto branch = plan_.stage1_branch()) {
    losses::Stage1Batch sb;
    sb.images = in.images;
    sb.text_ids = in.text_ids;
    sb.text_mask = in.text_mask;
    sb.keys = torch::tensor(in.positions, torch::kLong).to(device_);
    sb.image_ids = in.image_ids;
    const auto l = losses::stage1_losses(model_, *branch, sb, dec_id_, seed, collectives_);
    loss = l.total;
    values.itc = l.itc.item<double>();
    values.itm = l.itm.item<double>();
    values.itg = l.itg.item<double>();
  } else if (plan_.reads_masks()) {
    losses::SamPretrainOptions options;
    options.turns = mask_turns_now();
    if (plan_.mask_classes() > 0) {
      const auto& mc = train_.stage.mask_classes;
      options.classes = losses::MaskClassTargets{in.mask_classes, mc.first_id, mc.weight};
      if (!mc.places.empty()) {
        options.classes->places = {mc.places[0], mc.places[1]};
        options.classes->place_weight = mc.place_weight > 0 ? mc.place_weight : mc.weight;
      }
    }
    const auto l = losses::sam_pretrain_loss(model_, in.images, in.masks, seed, options);
    loss = l.total;
    values.mask = l.mask.item<double>();
    if (l.mask_class.defined()) {
      values.mask_class = l.mask_class.item<double>();
      values.mask_class_acc = l.image_accuracy;
    }
    if (l.mask_place.defined()) values.mask_place = l.mask_place.item<double>();
  } else if (plan_.encoder_pretrain_branch()) {
    loss = losses::clip_pretrain_loss(model_, in.images, in.text_ids, in.text_mask, collectives_);
    values.itc = loss.item<double>();
  } else {
    const bool text_only = plan_.text_only();
    models::VisualPrefix prefix;
    // train.mirror_unscored_words: about half the rows mirrored, their side words unscored.
    torch::Tensor unscored;
    const bool mirror = mirror_ids_.defined() && training && !text_only;
    const auto rows = mirror ? mirrored_rows(seed, in.positions) : torch::Tensor();
    if (mirror)
      unscored =
          rows.to(in.text_ids.device()).unsqueeze(1) & at::isin(in.text_ids, mirror_ids_.to(in.text_ids.device()));
    if (!text_only) prefix = model_.encode(mirror ? mirror_left_right(in.images, rows) : in.images);
    // Word dropout while training only: validation reads the real words.
    torch::Tensor read;
    if (train_.word_dropout > 0 && training)
      read = losses::drop_words(in.text_ids, in.text_mask, in.prompt_lengths, train_.word_dropout, tokenizer_->unk_id(),
                                seed, in.positions);
    loss = losses::caption_loss(model_, text_only ? nullptr : &prefix, in.text_ids, in.text_mask, in.prompt_lengths,
                                read, unscored);
    loss = losses::token_mean_over_ranks(
        loss, losses::lm_targets(in.text_ids, in.text_mask, text_only ? 0 : 1, in.prompt_lengths, unscored),
        collectives_);
    values.lm = loss.item<double>();
  }
  values.total = loss.item<double>();
  return {loss, values};
}

StepResult StepRunner::step(const MicroBatches& next, int64_t step, const std::function<bool()>& stop_here) {
  optimizer_.zero_grad();
  const auto accum = static_cast<double>(train_.grad_accum);
  // Micro-batches: losses averaged, gradients accumulated.
  StepResult r;
  r.losses.terms = plan_.losses();
  std::vector<double> mean(LossBreakdown::kValues, 0.0);
  int64_t images = 0;
  bool finite = true;
  for (int64_t micro = 0; micro < train_.grad_accum; ++micro) {
    const auto in = next(micro);
    if (!in) continue;
    const uint64_t seed = data::mix_seed(seed_, static_cast<uint64_t>(step), static_cast<uint64_t>(micro));
    auto [loss, values] = losses(*in, seed);
    loss = loss / accum;
    if (on_loss) on_loss(step, loss);
    values.total = loss.item<double>() * accum;
    if (!std::isfinite(values.total)) finite = false;
    if (finite) scaler_.scale_loss(loss).backward();
    const auto v = values.values();
    for (size_t k = 0; k < LossBreakdown::kValues; ++k) mean[k] += v[k] / accum;
    images += in->rows();
  }
  // Agree over ranks: mean losses, images, any non-finite loss, any stop request.
  std::vector<double> shared = mean;
  shared.push_back(static_cast<double>(images));
  shared.push_back(finite ? 0.0 : 1.0);
  shared.push_back(stop_here && stop_here() ? 1.0 : 0.0);
  comm_.sum(shared);
  const auto world = static_cast<double>(comm_.world_size());
  for (size_t k = 0; k < LossBreakdown::kValues; ++k) mean[k] = shared[k] / world;
  r.losses.set_values(mean);
  r.images = static_cast<int64_t>(shared[LossBreakdown::kValues]);
  const bool any_nonfinite = shared[LossBreakdown::kValues + 1] > 0;
  r.stop_requested = shared[LossBreakdown::kValues + 2] > 0;

  if (!any_nonfinite) comm_.average_gradients(params_, train_.bucket_mb << 20);
  // A finite loss can still give non-finite gradients (an overflow in the backward): outside
  // fp16's loss scaling, whose overflow skips below, such a step is treated as a non-finite loss,
  // so no update ever writes NaN into the parameters. The gradients are averaged, so every rank
  // sees the same norm.
  const auto max_norm = [&] {
    return train_.clip_grad_norm > 0 ? train_.clip_grad_norm : std::numeric_limits<double>::infinity();
  };
  if (any_nonfinite) {
    r.nonfinite = "non-finite loss at step " + std::to_string(step) + ": " + r.losses.text();
  } else if (!scaler_.enabled()) {
    r.grad_norm = torch::nn::utils::clip_grad_norm_(params_, max_norm());
    if (!std::isfinite(r.grad_norm))
      r.nonfinite = "non-finite gradient norm at step " + std::to_string(step) + " (loss " + r.losses.text() + ")";
  }
  if (!r.nonfinite.empty()) {
    optimizer_.zero_grad();
    return r;
  }
  // fp16: unscale, and skip the update (the scaler halves its scale) when a gradient overflowed.
  r.updated = scaler_.unscale(params_);
  if (!r.updated)
    core::log_debug("train", "fp16 gradient overflow at step {}; loss scale now {}", step, scaler_.scale());
  if (r.updated && scaler_.enabled() && train_.clip_grad_norm > 0)
    r.grad_norm = torch::nn::utils::clip_grad_norm_(params_, train_.clip_grad_norm);
  if (r.updated) optimizer_.step();
  return r;
}

}  // namespace msmedcap::training
