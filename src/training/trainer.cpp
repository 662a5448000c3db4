#include "msmedcap/training/trainer.h"

#include <torch/torch.h>

#include <chrono>
#include <cmath>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>

#include "msmedcap/core/atomic_file.h"
#include "msmedcap/core/check.h"
#include "msmedcap/core/compat.h"
#include "msmedcap/core/device.h"
#include "msmedcap/core/logging.h"
#include "msmedcap/core/progress.h"
#include "msmedcap/data/loader.h"
#include "msmedcap/data/text.h"
#include "msmedcap/data/text_batch.h"
#include "msmedcap/data/tokenizer.h"
#include "msmedcap/inference/features.h"
#include "msmedcap/io/checkpoint.h"
#include "msmedcap/losses/lm.h"
#include "msmedcap/losses/stage1.h"
#include "msmedcap/models/dropout.h"
#include "msmedcap/training/distributed.h"
#include "msmedcap/training/optimizer.h"
#include "msmedcap/training/schedule.h"
#include "msmedcap/training/stages.h"

namespace msmedcap::training {
namespace {

namespace fs = std::filesystem;

/// A stable 63-bit id of an image path (FNV-1a), equal in every process.
int64_t image_id_of(const std::string& path) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : path) h = (h ^ c) * 1099511628211ull;
  return static_cast<int64_t>(h >> 1);
}

/// Values of one micro-batch or a mean of several: total, itc, itm, itg, lm.
struct LossValues {
  static constexpr int kCount = 5;
  double v[kCount] = {0, 0, 0, 0, 0};
  StepLosses losses() const { return StepLosses{v[0], v[1], v[2], v[3], v[4]}; }
};

class Trainer {
 public:
  Trainer(models::MsMedCapModelImpl& model, const config::RunConfig& cfg, const config::Json& resolved,
          const TrainerOptions& options);
  TrainResult run();

 private:
  bool leader() const { return !options_.dist || options_.dist->rank() == 0; }
  int64_t world() const { return options_.dist ? options_.dist->world_size() : 1; }
  std::unique_ptr<data::DataLoader> make_loader(config::DatasetConfig data, config::LoaderConfig lc, bool training);
  data::Batch next_batch();
  /// Trims `batch` to the smallest batch size over ranks; returns it (0: skip the micro-batch).
  int64_t agree_batch_size(data::Batch& batch);
  /// The stage's losses on one batch (the graph kept for backward); `seed` keys hard negatives
  /// and dropout masks.
  std::pair<at::Tensor, LossValues> compute(const data::Batch& batch, const data::ExampleOptions& ex, uint64_t seed);
  /// Sums `values` over ranks in place.
  void reduce(std::vector<double>& values);
  LossValues validate();
  std::string save(bool best = false);
  /// The first trained parameter with a NaN or infinite value ("" when all are finite).
  std::string first_nonfinite_parameter() const;
  /// The checkpoint a stop leaves as the one to use: the last one saved, else checkpoints/latest.
  std::string last_good_checkpoint() const;
  /// Ends the run on a non-finite step (nan_action stop, or too many skipped): saves the
  /// parameters when they are still finite (the step updated nothing), never a diverged state.
  [[noreturn]] void stop_nonfinite(const std::string& what);
  void restore();
  void start_run_dir();
  void append_metrics(const config::Json& line);
  config::Json loss_json(const LossValues& l) const;
  std::string loss_text(const LossValues& l) const;

  models::MsMedCapModelImpl& model_;
  const config::RunConfig& cfg_;
  const config::TrainConfig& tcfg_;
  config::Json resolved_;
  TrainerOptions options_;
  bool stage1_ = false, sam_branch_ = false, text_only_ = false;
  std::vector<std::pair<std::string, torch::Tensor>> params_;
  std::vector<torch::Tensor> tensors_;
  std::unique_ptr<Optimizer> optimizer_;
  std::unique_ptr<data::TextTokenizer> qformer_tok_, decoder_tok_;
  int64_t dec_id_ = -1;
  data::ExampleOptions examples_, val_examples_;
  std::unique_ptr<data::DataLoader> loader_, val_loader_;
  losses::Collectives collectives_;
  bool amp_ = false;
  c10::ScalarType amp_dtype_ = c10::kBFloat16;
  int64_t steps_per_epoch_ = 1, total_steps_ = 0, epochs_ = 1;
  // Progress (saved with checkpoints).
  int64_t step_ = 0, skipped_ = 0, best_step_ = -1;
  double best_loss_ = 0, loss_scale_ = 1.0;
  int64_t good_scaled_steps_ = 0;
  std::string best_dir_, last_saved_;
  int64_t last_saved_step_ = -1;
};

Trainer::Trainer(models::MsMedCapModelImpl& model, const config::RunConfig& cfg, const config::Json& resolved,
                 const TrainerOptions& options)
    : model_(model), cfg_(cfg), tcfg_(cfg.train), resolved_(resolved), options_(options) {
  MSMEDCAP_CHECK(!options_.run_dir.empty(), "train: a run folder is needed (--run-dir)");
  MSMEDCAP_CHECK(!cfg_.data.sources.empty(), "data.sources: training needs at least one dataset source");
  const auto& stage = tcfg_.stage;
  stage1_ = stage.name == "stage1_clip" || stage.name == "stage1_sam";
  sam_branch_ = stage.name == "stage1_sam";
  text_only_ = stage.name == "decoder_lm";
  if (tcfg_.precision != "fp32") {
    MSMEDCAP_CHECK(options_.device.is_cuda(), "train.precision: ", tcfg_.precision,
                   " needs a CUDA device (runtime.device is ", options_.device.str(), "); use fp32 on CPU");
    amp_ = true;
    amp_dtype_ = tcfg_.precision == "bf16" ? c10::kBFloat16 : c10::kHalf;
    if (tcfg_.precision == "fp16") loss_scale_ = 65536.0;
  }

  MSMEDCAP_CHECK(cfg_.runtime.dtype == "fp32", "runtime.dtype: ", cfg_.runtime.dtype,
                 " applies to inference commands; training keeps float32 master weights (train.frozen_dtype "
                 "stores the frozen parts in half precision, train.precision runs autocast)");
  const auto frozen_dtype = core::parse_dtype(tcfg_.frozen_dtype, "train.frozen_dtype");
  MSMEDCAP_CHECK(frozen_dtype != c10::kHalf || options_.device.is_cuda(),
                 "train.frozen_dtype: fp16 needs a CUDA device; use bf16 or fp32 on the CPU");

  model_.to(options_.device);
  if (model_.vision_model) model_.vision_model->encoder->gradient_checkpointing = tcfg_.grad_checkpointing;
  params_ = apply_stage(model_, stage);
  store_frozen(model_, frozen_dtype);
  for (const auto& [name, p] : params_) tensors_.push_back(p);
  set_train_mode(model_, stage);
  optimizer_ = std::make_unique<Optimizer>(params_, tcfg_.optimizer);
  if (options_.dist) {
    collectives_ = options_.dist->collectives();
    options_.dist->broadcast_parameters(tensors_);
  }

  // Tokenizers, checked against the vocabularies they feed.
  if (stage1_) {
    MSMEDCAP_CHECK(!cfg_.tokenizers.qformer.empty(), "tokenizers.qformer: stage ", stage.name,
                   " needs the Q-Former's WordPiece vocabulary");
    qformer_tok_ = data::load_tokenizer(cfg_.tokenizers.qformer);
    dec_id_ = qformer_tok_->token_to_id("[DEC]");
    const auto& q = sam_branch_ ? cfg_.model.sam_qformer : cfg_.model.qformer;
    MSMEDCAP_CHECK(qformer_tok_->vocab_size() <= q.vocab_size, "tokenizers.qformer: ", qformer_tok_->vocab_size(),
                   " tokens (with [DEC]) do not fit the Q-Former's vocab_size ", q.vocab_size);
  } else {
    MSMEDCAP_CHECK(!cfg_.tokenizers.decoder.empty(), "tokenizers.decoder: stage ", stage.name,
                   " needs the decoder's tokenizer");
    decoder_tok_ = data::load_tokenizer(cfg_.tokenizers.decoder);
    MSMEDCAP_CHECK(decoder_tok_->vocab_size() <= cfg_.model.decoder.vocab_size, "tokenizers.decoder: ",
                   decoder_tok_->vocab_size(), " tokens do not fit the decoder's vocab_size ", cfg_.model.decoder.vocab_size);
    // A prompt that fills the text budget leaves no caption token to learn from.
    const auto prompt_tokens = static_cast<int64_t>(decoder_tok_->encode(tcfg_.prompt, true).size());
    MSMEDCAP_CHECK(tcfg_.prompt.empty() || prompt_tokens < tcfg_.decoder_max_len, "train.prompt: ", prompt_tokens,
                   " tokens leave no room for the caption within train.decoder_max_len (", tcfg_.decoder_max_len, ")");
  }

  // The CLIP ViT interpolates its position embeddings to other sizes (LAVIS fine-tunes at 364);
  // SAM's input size is fixed by its relative positions.
  const auto& transform = cfg_.data.transform;
  MSMEDCAP_CHECK(!cfg_.model.use_sam || transform.sam_size == cfg_.model.sam.image_size, "data.transform.sam_size: ",
                 transform.sam_size, " differs from model.sam.image_size ", cfg_.model.sam.image_size);
  loader_ = make_loader(cfg_.data, cfg_.loader, true);
  if (!cfg_.val_data.sources.empty()) val_loader_ = make_loader(cfg_.val_data, cfg_.loader, false);
  steps_per_epoch_ = loader_->batches_per_epoch() / tcfg_.grad_accum;
  MSMEDCAP_CHECK(steps_per_epoch_ >= 1, "train: an epoch has ", loader_->batches_per_epoch(), " batches per rank, fewer than ",
                 "train.grad_accum = ", tcfg_.grad_accum, " (more data, a smaller loader.batch_size, or fewer processes)");
  total_steps_ = tcfg_.max_steps > 0 ? tcfg_.max_steps : tcfg_.epochs * steps_per_epoch_;
  epochs_ = tcfg_.max_steps > 0 ? (total_steps_ + steps_per_epoch_ - 1) / steps_per_epoch_ : tcfg_.epochs;
}

std::unique_ptr<data::DataLoader> Trainer::make_loader(config::DatasetConfig data, config::LoaderConfig lc, bool training) {
  if (!training) {
    data.transform = cfg_.data.transform;  // validation sees the training transform, unaugmented
    data.transform.augment = false;
    data.transform.hflip = false;
    lc.shuffle = false;
    lc.drop_last = false;
  }
  data::ExampleOptions ex = inference::example_options(model_, data);
  if (stage1_) {
    (sam_branch_ ? ex.clip : ex.sam) = false;
    MSMEDCAP_CHECK(sam_branch_ ? ex.sam : ex.clip, "train.stage.name: ", tcfg_.stage.name, " needs the ",
                   sam_branch_ ? "SAM" : "CLIP", " branch, which model.", sam_branch_ ? "use_sam" : "use_clip", " turns off");
  }
  if (text_only_) ex.clip = ex.sam = false;  // captions only: no image is decoded
  (training ? examples_ : val_examples_) = ex;
  auto mixture = std::make_shared<const data::Mixture>(data);
  return std::make_unique<data::DataLoader>(mixture, data::make_example_processor(data.transform, ex), lc,
                                            options_.dist ? options_.dist->rank() : 0, world());
}

data::Batch Trainer::next_batch() {
  for (;;) {
    auto batch = loader_->next();  // nothing at an epoch's end: the next call starts the next
    if (batch) return std::move(*batch);
  }
}

int64_t Trainer::agree_batch_size(data::Batch& batch) {
  auto n = static_cast<int64_t>(batch.samples.size());
  if (options_.dist) {
    // Gathers need equal sizes: every rank keeps the smallest rank's count (bad samples shrink
    // batches).
    auto t = torch::tensor({-n}, torch::kLong);
    options_.dist->all_reduce_max(t);
    n = -t.item<int64_t>();
  }
  if (n < static_cast<int64_t>(batch.samples.size())) {
    batch.samples.resize(static_cast<size_t>(n));
    batch.positions.resize(static_cast<size_t>(n));
    if (batch.clip.defined()) batch.clip = batch.clip.narrow(0, 0, n);
    if (batch.sam.defined()) batch.sam = batch.sam.narrow(0, 0, n);
  }
  return n;
}

std::pair<at::Tensor, LossValues> Trainer::compute(const data::Batch& batch, const data::ExampleOptions& ex, uint64_t seed) {
  const auto& dev = options_.device;
  models::ImageInputs inputs;
  if (batch.clip.defined()) (ex.clip_cache ? inputs.clip_features : inputs.clip_pixels) = batch.clip.to(dev);
  if (batch.sam.defined()) (ex.sam_cache ? inputs.sam_embeddings : inputs.sam_pixels) = batch.sam.to(dev);
  std::vector<std::string> captions;
  for (size_t i = 0; i < batch.samples.size(); ++i) {
    const auto& caps = batch.samples[i].captions;
    // Several captions per image: one per epoch, keyed by (seed, epoch, position).
    const uint64_t pick = data::mix_seed(static_cast<uint64_t>(cfg_.runtime.seed), static_cast<uint64_t>(batch.epoch),
                                         static_cast<uint64_t>(batch.positions[i])) % caps.size();
    captions.push_back(tcfg_.clean_captions ? data::clean_caption(caps[pick]) : caps[pick]);
  }

  core::AutocastScope autocast(amp_, amp_dtype_);
  // Dropout masks keyed by (seed, sample position): equal on any number of processes and on resume.
  models::DropoutKeyScope dropout({model_.qformer.is_empty() ? nullptr : model_.qformer->dropout_keys(),
                                   model_.sam_qformer.is_empty() ? nullptr : model_.sam_qformer->dropout_keys()},
                                  seed, batch.positions);
  LossValues values;
  at::Tensor loss;
  if (stage1_) {
    const auto text = data::qformer_text_batch(*qformer_tok_, captions, tcfg_.qformer_max_len);
    losses::Stage1Batch sb;
    sb.images = inputs;
    sb.text_ids = text.ids.to(dev);
    sb.text_mask = text.mask.to(dev);
    sb.keys = torch::tensor(batch.positions, torch::kLong).to(dev);
    if (tcfg_.itc_image_ids) {
      std::vector<int64_t> ids;
      for (const auto& s : batch.samples) ids.push_back(image_id_of(s.image));
      sb.image_ids = torch::tensor(ids, torch::kLong).to(dev);
    }
    const auto l = losses::stage1_losses(model_, sam_branch_, sb, dec_id_, seed, collectives_);
    loss = l.total;
    values.v[1] = l.itc.item<double>();
    values.v[2] = l.itm.item<double>();
    values.v[3] = l.itg.item<double>();
  } else {
    const auto text = data::decoder_text_batch(*decoder_tok_, captions, tcfg_.prompt, tcfg_.eos_text, tcfg_.decoder_max_len);
    const auto ids = text.ids.to(dev), mask = text.mask.to(dev);
    models::VisualPrefix prefix;
    if (!text_only_) prefix = model_.encode(inputs);
    loss = losses::caption_loss(model_, text_only_ ? nullptr : &prefix, ids, mask, text.prompt_lengths);
    loss = losses::token_mean_over_ranks(loss, losses::lm_targets(ids, mask, text_only_ ? 0 : 1, text.prompt_lengths),
                                         collectives_);
    values.v[4] = loss.item<double>();
  }
  values.v[0] = loss.item<double>();
  return {loss, values};
}

void Trainer::reduce(std::vector<double>& values) {
  if (!options_.dist) return;
  auto t = torch::tensor(values, torch::kFloat64);
  options_.dist->all_reduce_sum(t);
  for (size_t i = 0; i < values.size(); ++i) values[i] = t[static_cast<int64_t>(i)].item<double>();
}

LossValues Trainer::validate() {
  LossValues mean;
  if (!val_loader_) return mean;
  torch::NoGradGuard no_grad;
  model_.eval();
  val_loader_->restore(data::LoaderState{});
  std::vector<double> sums(LossValues::kCount + 1, 0.0);
  int64_t batches = 0;
  while (tcfg_.val_batches == 0 || batches < tcfg_.val_batches) {
    auto batch = val_loader_->next();
    if (!batch) break;
    // Stage 1 needs two images: a lone one has no ITM negative (a validation set of 8k + 1).
    const int64_t size = agree_batch_size(*batch);
    if (size == 0 || (stage1_ && size < 2)) continue;
    const auto n = static_cast<double>(batch->samples.size());
    const auto [loss, values] = compute(*batch, val_examples_, data::mix_seed(static_cast<uint64_t>(cfg_.runtime.seed), 0x76616cull,
                                                               static_cast<uint64_t>(batches)));
    for (int k = 0; k < LossValues::kCount; ++k) sums[static_cast<size_t>(k)] += values.v[k] * n;
    sums.back() += n;
    ++batches;
  }
  reduce(sums);
  for (int k = 0; k < LossValues::kCount; ++k) mean.v[k] = sums.back() > 0 ? sums[static_cast<size_t>(k)] / sums.back() : 0.0;
  set_train_mode(model_, tcfg_.stage);
  return mean;
}

config::Json Trainer::loss_json(const LossValues& l) const {
  config::Json j;
  j["loss"] = l.v[0];
  if (stage1_) {
    j["itc"] = l.v[1];
    j["itm"] = l.v[2];
    j["itg"] = l.v[3];
  } else {
    j["lm"] = l.v[4];
  }
  return j;
}

std::string Trainer::loss_text(const LossValues& l) const {
  std::ostringstream s;
  s.precision(4);
  s << l.v[0];
  if (stage1_) s << " (itc " << l.v[1] << " itm " << l.v[2] << " itg " << l.v[3] << ")";
  return s.str();
}

void Trainer::append_metrics(const config::Json& line) {
  if (!leader()) return;
  std::ofstream out(options_.run_dir + "/metrics.jsonl", std::ios::app);
  out << line.dump() << "\n";
  MSMEDCAP_CHECK(out.good(), options_.run_dir, "/metrics.jsonl: cannot append (disk full?)");
}

std::string Trainer::first_nonfinite_parameter() const {
  torch::NoGradGuard no_grad;
  // One device sync for the whole check, not one per tensor; the name only when one fails.
  std::vector<at::Tensor> finite;
  for (const auto& [name, p] : params_) finite.push_back(torch::isfinite(p).all());
  if (finite.empty() || torch::stack(finite).all().item<bool>()) return "";
  const auto first = torch::stack(finite).logical_not().nonzero()[0][0].item<int64_t>();
  return params_[static_cast<size_t>(first)].first;
}

std::string Trainer::last_good_checkpoint() const {
  if (!last_saved_.empty()) return last_saved_;
  const std::string latest = io::latest_checkpoint(options_.run_dir);
  return latest.empty() ? std::string("none (no checkpoint was written)") : latest;
}

void Trainer::stop_nonfinite(const std::string& what) {
  const std::string why = tcfg_.nan_action == "stop" ? "" : " (more than train.max_skipped_steps skipped)";
  const std::string bad = first_nonfinite_parameter();
  if (!bad.empty()) {
    MSMEDCAP_FAIL("train: ", what, why, "; parameter '", bad, "' is already non-finite, so nothing was saved; the last "
                  "good checkpoint is ", last_good_checkpoint(), " (lower train.optimizer.lr or set train.clip_grad_norm)");
  }
  const std::string dir = save();  // every rank: save() ends with a barrier
  MSMEDCAP_FAIL("train: ", what, why, "; stopped after saving ", leader() ? dir : std::string("the checkpoint"),
                " (train.nan_action = skip skips such steps)");
}

std::string Trainer::save(bool best) {
  // A diverged state never becomes checkpoints/latest (nor best): --resume and caption --run
  // keep the last good one.
  const std::string bad = first_nonfinite_parameter();
  MSMEDCAP_CHECK(bad.empty(), "train: parameter '", bad, "' is non-finite at step ", step_, "; not saved, the last good "
                 "checkpoint is ", last_good_checkpoint(), " (lower train.optimizer.lr or set train.clip_grad_norm)");
  std::string dir;
  if (leader()) {
    io::Checkpoint ckpt;
    for (const auto& [name, p] : params_) ckpt.model[name] = p.detach();
    ckpt.optimizer = optimizer_->state();
    ckpt.state = {{"step", step_},
                  {"epoch", step_ / steps_per_epoch_},
                  {"stage", tcfg_.stage.name},
                  {"loader", loader_->state().to_json()},
                  {"skipped_steps", skipped_},
                  {"best_step", best_step_},
                  {"best_val_loss", best_loss_},
                  {"loss_scale", loss_scale_},
                  {"good_scaled_steps", good_scaled_steps_},
                  {"world_size", world()}};
    ckpt.config = resolved_;
    dir = io::save_checkpoint(options_.run_dir, step_, ckpt);
    if (best) best_dir_ = dir;
    std::vector<std::string> protect{dir};
    if (!best_dir_.empty()) protect.push_back(best_dir_);
    io::prune_checkpoints(options_.run_dir, tcfg_.keep, protect);
    core::log_info("train", "checkpoint {}{}", dir, best ? " (best so far)" : "");
  }
  if (options_.dist) options_.dist->barrier();
  last_saved_ = dir;
  last_saved_step_ = step_;
  return dir;
}

void Trainer::start_run_dir() {
  if (!leader()) return;
  fs::create_directories(options_.run_dir);
  MSMEDCAP_CHECK(io::latest_checkpoint(options_.run_dir).empty(), options_.run_dir,
                 ": already holds a run with checkpoints; continue it with --resume or choose another --run-dir");
  core::write_file_atomic(options_.run_dir + "/config.json", resolved_.dump(2) + "\n");
  core::write_file_atomic(options_.run_dir + "/metrics.jsonl", "");
}

void Trainer::restore() {
  const std::string dir = io::latest_checkpoint(options_.run_dir);
  MSMEDCAP_CHECK(!dir.empty(), options_.run_dir, ": --resume found no checkpoint (checkpoints/latest)");
  const io::Checkpoint ckpt = io::load_checkpoint(dir);
  const auto& st = ckpt.state;
  const std::string where = dir + "/state.json";
  MSMEDCAP_CHECK(st.value("stage", std::string()) == tcfg_.stage.name, where, ": the run trained stage '",
                 st.value("stage", std::string()), "', the config says '", tcfg_.stage.name, "'");
  MSMEDCAP_CHECK(st.value("world_size", int64_t{1}) == world(), where, ": saved by ", st.value("world_size", int64_t{1}),
                 " processes, resumed by ", world(), " (the data order is sharded by process count)");
  {
    torch::NoGradGuard no_grad;
    for (const auto& [name, p] : params_) {
      const auto it = ckpt.model.find(name);
      MSMEDCAP_CHECK(it != ckpt.model.end(), dir, "/model.safetensors: no tensor '", name, "'");
      MSMEDCAP_CHECK(it->second.sizes() == p.sizes(), dir, "/model.safetensors: '", name, "' has shape ", it->second.sizes(),
                     ", the model ", p.sizes());
      p.copy_(it->second);
    }
  }
  optimizer_->load_state(io::StateDictSource(ckpt.optimizer, dir + "/optimizer.safetensors"));
  step_ = st.at("step").get<int64_t>();
  skipped_ = st.value("skipped_steps", int64_t{0});
  best_step_ = st.value("best_step", int64_t{-1});
  best_loss_ = st.value("best_val_loss", 0.0);
  loss_scale_ = st.value("loss_scale", loss_scale_);
  good_scaled_steps_ = st.value("good_scaled_steps", int64_t{0});
  loader_->restore(data::LoaderState::from_json(st.at("loader"), where));
  if (best_step_ >= 0) {
    const std::string best = io::checkpoint_folder(options_.run_dir, best_step_);
    if (fs::exists(best)) best_dir_ = best;
  }
  last_saved_ = dir;
  last_saved_step_ = step_;
  if (leader()) {
    // The metrics log continues from the checkpoint: lines of later steps (lost work) go.
    std::ifstream in(options_.run_dir + "/metrics.jsonl");
    std::string line, kept;
    while (std::getline(in, line)) {
      if (line.empty()) continue;
      const auto j = config::Json::parse(line, nullptr, false);
      if (!j.is_discarded() && j.value("step", int64_t{0}) <= step_) kept += line + "\n";
    }
    core::write_file_atomic(options_.run_dir + "/metrics.jsonl", kept);
    core::write_file_atomic(options_.run_dir + "/config.json", resolved_.dump(2) + "\n");
  }
  core::log_info("train", "resumed {} at step {} of {}", dir, step_, total_steps_);
}

TrainResult Trainer::run() {
  if (options_.resume) {
    restore();
  } else {
    start_run_dir();
  }
  if (options_.dist) options_.dist->barrier();
  int64_t trainable = 0;
  for (const auto& t : tensors_) trainable += t.numel();
  if (leader()) {
    core::log_info("train", "stage {}: {} trainable parameters in {} tensors; {} steps ({} per epoch, {} micro-batches of {} x {} "
                   "process{})", tcfg_.stage.name, trainable, tensors_.size(), total_steps_, steps_per_epoch_, tcfg_.grad_accum,
                   cfg_.loader.batch_size, world(), world() > 1 ? "es" : "");
  }
  std::unique_ptr<core::Progress> progress;
  if (leader()) {
    core::ProgressOptions po;
    po.unit = "step";
    progress = std::make_unique<core::Progress>("train", total_steps_ - step_, po);
  }

  TrainResult result;
  LossValues last;
  auto window_start = std::chrono::steady_clock::now();
  int64_t window_images = 0;
  while (step_ < total_steps_) {
    const int64_t epoch = step_ / steps_per_epoch_;
    const double lr = learning_rate(tcfg_.optimizer, step_, epoch, epochs_, total_steps_);
    optimizer_->set_lr(lr);
    optimizer_->zero_grad();

    // Micro-batches: losses averaged, gradients accumulated.
    LossValues step_values;
    int64_t images = 0;
    bool finite = true;
    for (int64_t micro = 0; micro < tcfg_.grad_accum; ++micro) {
      data::Batch batch = next_batch();
      if (agree_batch_size(batch) == 0) continue;
      const uint64_t seed = data::mix_seed(static_cast<uint64_t>(cfg_.runtime.seed), static_cast<uint64_t>(step_),
                                           static_cast<uint64_t>(micro));
      auto [loss, values] = compute(batch, examples_, seed);
      loss = loss / static_cast<double>(tcfg_.grad_accum);
      if (options_.on_loss) options_.on_loss(step_, loss);
      values.v[0] = loss.item<double>() * static_cast<double>(tcfg_.grad_accum);
      if (!std::isfinite(values.v[0])) finite = false;
      if (finite) (loss_scale_ != 1.0 ? loss * loss_scale_ : loss).backward();
      for (int k = 0; k < LossValues::kCount; ++k) step_values.v[k] += values.v[k] / static_cast<double>(tcfg_.grad_accum);
      images += static_cast<int64_t>(batch.samples.size());
    }
    // Agree over ranks: mean losses, images, any non-finite loss, any stop signal.
    const int signal = options_.stop_signal ? options_.stop_signal->load() : 0;
    std::vector<double> shared(step_values.v, step_values.v + LossValues::kCount);
    shared.push_back(static_cast<double>(images));
    shared.push_back(finite ? 0.0 : 1.0);
    shared.push_back(signal != 0 ? 1.0 : 0.0);
    reduce(shared);
    for (int k = 0; k < LossValues::kCount; ++k) step_values.v[k] = shared[static_cast<size_t>(k)] / static_cast<double>(world());
    images = static_cast<int64_t>(shared[LossValues::kCount]);
    const bool any_nonfinite = shared[LossValues::kCount + 1] > 0;
    const bool stop_requested = shared[LossValues::kCount + 2] > 0;

    if (!any_nonfinite && options_.dist) options_.dist->average_gradients(tensors_, tcfg_.bucket_mb << 20);
    // A finite loss can still give non-finite gradients (an overflow in the backward): outside
    // fp16's loss scaling, whose overflow skips below, such a step is treated as a non-finite loss,
    // so no update ever writes NaN into the parameters. The gradients are averaged, so every
    // rank sees the same norm.
    double grad_norm = -1;
    std::string nonfinite_what;
    if (any_nonfinite) {
      nonfinite_what = "non-finite loss at step " + std::to_string(step_) + ": " + loss_text(step_values);
    } else if (loss_scale_ == 1.0) {
      grad_norm = torch::nn::utils::clip_grad_norm_(
          tensors_, tcfg_.clip_grad_norm > 0 ? tcfg_.clip_grad_norm : std::numeric_limits<double>::infinity());
      if (!std::isfinite(grad_norm))
        nonfinite_what = "non-finite gradient norm at step " + std::to_string(step_) + " (loss " + loss_text(step_values) + ")";
    }
    if (!nonfinite_what.empty()) {
      ++skipped_;
      optimizer_->zero_grad();
      const bool stop = tcfg_.nan_action == "stop" || skipped_ > tcfg_.max_skipped_steps;
      if (stop) stop_nonfinite(nonfinite_what);
      core::log_warn("train", "{}; step skipped ({} so far)", nonfinite_what, skipped_);
      append_metrics({{"step", step_ + 1}, {"skipped", true}, {"lr", lr}});
      ++step_;
      if (progress) progress->advance();
      continue;
    }

    bool update = true;
    if (loss_scale_ != 1.0) {
      // fp16: unscale, and skip the update (halving the scale) when a gradient overflowed.
      bool overflow = false;
      for (auto& p : tensors_) {
        if (!p.grad().defined()) continue;
        p.mutable_grad().div_(loss_scale_);
        overflow = overflow || !torch::isfinite(p.grad()).all().item<bool>();
      }
      if (overflow) {
        loss_scale_ /= 2;
        good_scaled_steps_ = 0;
        update = false;
        core::log_debug("train", "fp16 gradient overflow at step {}; loss scale now {}", step_, loss_scale_);
      } else if (++good_scaled_steps_ % 2000 == 0) {
        loss_scale_ *= 2;
      }
    }
    if (update && loss_scale_ != 1.0 && tcfg_.clip_grad_norm > 0) {
      grad_norm = torch::nn::utils::clip_grad_norm_(tensors_, tcfg_.clip_grad_norm);
    }
    if (update) optimizer_->step();
    ++step_;
    last = step_values;
    window_images += images;
    if (progress) progress->advance();

    if (step_ % tcfg_.log_every == 0 || step_ == total_steps_) {
      const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - window_start).count();
      const double rate = seconds > 0 ? static_cast<double>(window_images) / seconds : 0.0;
      config::Json line = loss_json(step_values);
      line["step"] = step_;
      line["epoch"] = epoch;
      line["lr"] = lr;
      line["images_per_s"] = rate;
      line["rss_mb"] = core::resident_mb();
      line["peak_rss_mb"] = core::peak_resident_mb();
      if (grad_norm >= 0) line["grad_norm"] = grad_norm;
      if (loss_scale_ != 1.0) line["loss_scale"] = loss_scale_;
      append_metrics(line);
      if (leader()) {
        core::log_info("train", "step {}/{} loss {} lr {:.2e} {:.1f} img/s", step_, total_steps_, loss_text(step_values), lr, rate);
      }
      window_start = std::chrono::steady_clock::now();
      window_images = 0;
    }

    const bool epoch_end = step_ % steps_per_epoch_ == 0;
    const bool validate_now = val_loader_ && (tcfg_.val_every > 0 ? step_ % tcfg_.val_every == 0 : epoch_end);
    bool best = false;
    if (validate_now) {
      const LossValues v = validate();
      best = best_step_ < 0 || v.v[0] < best_loss_;
      if (best) {
        best_step_ = step_;
        best_loss_ = v.v[0];
      }
      config::Json val = loss_json(v);
      std::string extra;
      if (options_.on_validate) {
        model_.eval();
        const config::Json more = options_.on_validate(step_);
        set_train_mode(model_, tcfg_.stage);
        for (const auto& [key, value] : more.items()) {
          val[key] = value;
          extra += fmt::format(" {} {}", key, value.is_number_float() ? fmt::format("{:.4g}", value.get<double>()) : value.dump());
        }
      }
      append_metrics({{"step", step_}, {"val", val}, {"best", best}});
      if (leader())
        core::log_info("train", "step {} validation loss {}{}{}", step_, loss_text(v), extra, best ? " (best)" : "");
    }
    const bool save_now = best || step_ == total_steps_ || stop_requested ||
                          (tcfg_.save_every > 0 ? step_ % tcfg_.save_every == 0 : epoch_end);
    if (save_now) save(best);
    if (stop_requested) {
      result.stopped_by_signal = signal != 0 ? signal : SIGTERM;
      core::log_warn("train", "stopped by signal {} at step {}; continue with --resume {}", result.stopped_by_signal, step_,
                     options_.run_dir);
      break;
    }
  }
  if (step_ != last_saved_step_) save();
  if (progress) progress->finish();
  result.steps = step_;
  result.skipped_steps = skipped_;
  result.last = last.losses();
  result.checkpoint = last_saved_;
  return result;
}

}  // namespace

TrainResult train(models::MsMedCapModelImpl& model, const config::RunConfig& cfg, const config::Json& resolved,
                  const TrainerOptions& options) {
  Trainer trainer(model, cfg, resolved, options);
  return trainer.run();
}

}  // namespace msmedcap::training
