#include "msmedcap/training/trainer.h"

#include <torch/torch.h>

#include <chrono>
#include <csignal>
#include <filesystem>

#include "msmedcap/core/atomic_file.h"
#include "msmedcap/core/check.h"
#include "msmedcap/core/device.h"
#include "msmedcap/core/logging.h"
#include "msmedcap/core/progress.h"
#include "msmedcap/data/loader.h"
#include "msmedcap/data/mixture.h"
#include "msmedcap/data/tokenizer.h"
#include "msmedcap/inference/features.h"
#include "msmedcap/io/checkpoint.h"
#include "msmedcap/io/run_folder.h"
#include "msmedcap/training/communicator.h"
#include "msmedcap/training/optimizer.h"
#include "msmedcap/training/schedule.h"
#include "msmedcap/training/stage_plan.h"
#include "msmedcap/training/stages.h"
#include "msmedcap/training/trainer_state.h"
#include "msmedcap/training/validators.h"

namespace msmedcap::training {
namespace {

namespace fs = std::filesystem;

/// Images per second over the steps since the last metrics line.
class RateWindow {
 public:
  void add(int64_t images) { images_ += images; }
  double take() {
    const auto now = std::chrono::steady_clock::now();
    const double seconds = std::chrono::duration<double>(now - start_).count();
    const double rate = seconds > 0 ? static_cast<double>(images_) / seconds : 0.0;
    start_ = now;
    images_ = 0;
    return rate;
  }

 private:
  std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
  int64_t images_ = 0;
};

class Trainer {
 public:
  Trainer(models::MsMedCapModelImpl& model, const config::RunConfig& cfg, const config::Json& resolved,
          const TrainerOptions& options);
  TrainResult run();

 private:
  std::unique_ptr<data::DataLoader> make_loader(config::DatasetConfig data, config::LoaderConfig lc, bool training);
  void load_tokenizer();
  /// The next micro-batch of the training loader, trimmed to the ranks' smallest (none: skip it).
  std::optional<StepInputs> next_micro_batch();
  /// A step that was not applied (non-finite loss or gradient norm): counted, logged, or the
  /// run stops as train.nan_action and train.max_skipped_steps say.
  void skip_step(const std::string& what, double lr);
  void log_step(const StepResult& r, int64_t epoch, double lr, double rate);
  /// The validation loss and the caller's validators; returns whether this is the best checkpoint.
  bool validate_now();
  std::string save(bool best = false);
  /// The first trained parameter with a NaN or infinite value ("" when all are finite).
  std::string first_nonfinite_parameter() const;
  /// The checkpoint a stop leaves as the one to use: the last one saved, else checkpoints/latest.
  std::string last_good_checkpoint() const;
  /// Ends the run on a non-finite step (nan_action stop, or too many skipped): saves the
  /// parameters when they are still finite (the step updated nothing), never a diverged state.
  [[noreturn]] void stop_nonfinite(const std::string& what);
  TrainerState state() const;
  void restore();
  void append_metrics(const config::Json& line) {
    if (comm_.leader()) folder_.append_metrics(line);
  }

  models::MsMedCapModelImpl& model_;
  const config::RunConfig& cfg_;
  const config::TrainConfig& tcfg_;
  config::Json resolved_;
  TrainerOptions options_;
  io::RunFolder folder_;
  std::unique_ptr<Communicator> local_;
  Communicator& comm_;
  StagePlan plan_;
  std::vector<std::pair<std::string, torch::Tensor>> params_;
  std::unique_ptr<Optimizer> optimizer_;
  std::unique_ptr<data::TextTokenizer> tokenizer_;
  int64_t dec_id_ = -1;
  std::unique_ptr<StepRunner> runner_;
  data::ExampleOptions examples_, val_examples_;
  std::unique_ptr<data::DataLoader> loader_, val_loader_;
  std::unique_ptr<LossValidator> loss_validator_;
  int64_t steps_per_epoch_ = 1, total_steps_ = 0, epochs_ = 1;
  // Progress (saved with checkpoints).
  int64_t step_ = 0, skipped_ = 0, best_step_ = -1;
  double best_loss_ = 0;
  std::string best_dir_, last_saved_;
  int64_t last_saved_step_ = -1;
};

Trainer::Trainer(models::MsMedCapModelImpl& model, const config::RunConfig& cfg, const config::Json& resolved,
                 const TrainerOptions& options)
    : model_(model),
      cfg_(cfg),
      tcfg_(cfg.train),
      resolved_(resolved),
      options_(options),
      folder_(options.run_dir),
      local_(options.comm ? nullptr : local_communicator()),
      comm_(options.comm ? *options.comm : *local_),
      plan_(cfg.train.stage, cfg.model) {
  MSMEDCAP_CHECK(!cfg_.data.sources.empty(), "data.sources: training needs at least one dataset source");
  MSMEDCAP_CHECK(cfg_.runtime.dtype == "fp32", "runtime.dtype: ", cfg_.runtime.dtype,
                 " applies to inference commands; training keeps float32 master weights (train.frozen_dtype "
                 "stores the frozen parts in half precision, train.precision runs autocast)");
  const auto frozen = frozen_dtype(tcfg_.frozen_dtype, options_.device);
#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
  // Without AVX512-BF16 (or AMX, which comes with it) oneDNN emulates bf16 products in float32
  // arithmetic plus conversions: autocast then costs time instead of saving it.
  if (tcfg_.precision == "bf16" && !options_.device.is_cuda() && !__builtin_cpu_supports("avx512bf16"))
    core::log_warn("train",
                   "train.precision bf16 on a CPU without AVX512-BF16: its products are emulated and likely "
                   "slower than fp32");
#endif

  model_.to(options_.device);
  if (model_.vision_model) model_.vision_model->encoder->gradient_checkpointing = tcfg_.grad_checkpointing;
  params_ = apply_stage(model_, plan_);
  store_frozen(model_, frozen);
  std::vector<torch::Tensor> tensors;
  for (const auto& [name, p] : params_) tensors.push_back(p);
  set_train_mode(model_, plan_);
  optimizer_ = std::make_unique<Optimizer>(params_, tcfg_.optimizer);
  comm_.broadcast_parameters(tensors);
  load_tokenizer();
  runner_ = std::make_unique<StepRunner>(model_, plan_, tcfg_, static_cast<uint64_t>(cfg_.runtime.seed),
                                         options_.device, comm_, *optimizer_, tensors, tokenizer_.get(), dec_id_);
  runner_->on_loss = options_.on_loss;

  // The CLIP ViT interpolates its position embeddings to other sizes (LAVIS fine-tunes at 364);
  // SAM's input size is fixed by its relative positions.
  const auto& transform = cfg_.data.transform;
  MSMEDCAP_CHECK(!cfg_.model.use_sam || transform.sam_size == cfg_.model.sam.image_size,
                 "data.transform.sam_size: ", transform.sam_size, " differs from model.sam.image_size ",
                 cfg_.model.sam.image_size);
  // The masks follow the SAM input's geometry only as sam_transform makes it from the image.
  MSMEDCAP_CHECK(
      !plan_.reads_masks() || (!transform.augment && !transform.hflip && !transform.sam_input_from_clip_tensor),
      "data.transform: sam_pretrain's masks are not augmented; set augment, hflip and "
      "sam_input_from_clip_tensor to false");
  loader_ = make_loader(cfg_.data, cfg_.loader, true);
  if (!cfg_.val_data.sources.empty()) {
    val_loader_ = make_loader(cfg_.val_data, cfg_.loader, false);
    loss_validator_ = std::make_unique<LossValidator>(*runner_, *val_loader_, val_examples_, plan_, comm_,
                                                      static_cast<uint64_t>(cfg_.runtime.seed), tcfg_.val_batches);
  }
  steps_per_epoch_ = loader_->batches_per_epoch() / tcfg_.grad_accum;
  MSMEDCAP_CHECK(steps_per_epoch_ >= 1, "train: an epoch has ", loader_->batches_per_epoch(),
                 " batches per rank, fewer than ", "train.grad_accum = ", tcfg_.grad_accum,
                 " (more data, a smaller loader.batch_size, or fewer processes)");
  total_steps_ = tcfg_.max_steps > 0 ? tcfg_.max_steps : tcfg_.epochs * steps_per_epoch_;
  epochs_ = tcfg_.max_steps > 0 ? (total_steps_ + steps_per_epoch_ - 1) / steps_per_epoch_ : tcfg_.epochs;
}

void Trainer::load_tokenizer() {
  if (plan_.tokenizer() == TextTokenizer::kNone) return;  // sam_pretrain reads masks, no text
  // Checked against the vocabulary it feeds.
  if (plan_.tokenizer() == TextTokenizer::kQFormer) {
    MSMEDCAP_CHECK(!cfg_.tokenizers.qformer.empty(), "tokenizers.qformer: stage ", plan_.name(),
                   " needs the Q-Former's WordPiece vocabulary");
    tokenizer_ = data::load_tokenizer(cfg_.tokenizers.qformer);
    dec_id_ = tokenizer_->token_to_id("[DEC]");
    const auto& q = *plan_.qformer_text_branch() == Branch::kSam ? cfg_.model.sam_qformer : cfg_.model.qformer;
    MSMEDCAP_CHECK(tokenizer_->vocab_size() <= q.vocab_size, "tokenizers.qformer: ", tokenizer_->vocab_size(),
                   " tokens (with [DEC]) do not fit the Q-Former's vocab_size ", q.vocab_size);
    return;
  }
  MSMEDCAP_CHECK(!cfg_.tokenizers.decoder.empty(), "tokenizers.decoder: stage ", plan_.name(),
                 " needs the decoder's tokenizer");
  tokenizer_ = data::load_tokenizer(cfg_.tokenizers.decoder);
  MSMEDCAP_CHECK(tokenizer_->vocab_size() <= cfg_.model.decoder.vocab_size,
                 "tokenizers.decoder: ", tokenizer_->vocab_size(), " tokens do not fit the decoder's vocab_size ",
                 cfg_.model.decoder.vocab_size);
  // A prompt that fills the text budget leaves no caption token to learn from.
  const auto prompt_tokens = static_cast<int64_t>(tokenizer_->encode(tcfg_.prompt, true).size());
  MSMEDCAP_CHECK(tcfg_.prompt.empty() || prompt_tokens < tcfg_.decoder_max_len, "train.prompt: ", prompt_tokens,
                 " tokens leave no room for the caption within train.decoder_max_len (", tcfg_.decoder_max_len, ")");
}

std::unique_ptr<data::DataLoader> Trainer::make_loader(config::DatasetConfig data, config::LoaderConfig lc,
                                                       bool training) {
  if (!training) {
    data.transform = cfg_.data.transform;  // validation sees the training transform, unaugmented
    data.transform.augment = false;
    data.transform.hflip = false;
    lc.shuffle = false;
    lc.drop_last = false;
  }
  // decoder_lm: captions only, no image is decoded; stage 1: one branch's images or features.
  std::vector<Branch> read;
  for (const Branch b : {Branch::kClip, Branch::kSam})
    if (plan_.reads(b)) read.push_back(b);
  data::ExampleOptions ex;
  ex.clip = ex.sam = false;
  if (!read.empty()) ex = inference::example_options(model_, data, read);
  ex.masks = plan_.reads_masks();
  ex.require_caption = plan_.reads_captions();
  (training ? examples_ : val_examples_) = ex;
  auto mixture = std::make_shared<const data::Mixture>(data);
  return std::make_unique<data::DataLoader>(mixture, data::make_example_processor(data.transform, ex), lc, comm_.rank(),
                                            comm_.world_size());
}

std::optional<StepInputs> Trainer::next_micro_batch() {
  std::optional<data::Batch> batch;
  while (!batch) batch = loader_->next();  // nothing at an epoch's end: the next call starts the next
  if (agree_batch_size(*batch, comm_) == 0) return std::nullopt;
  return runner_->inputs(*batch, examples_);
}

bool Trainer::validate_now() {
  model_.eval();
  config::Json val = loss_validator_->validate(step_);
  const LossBreakdown& v = loss_validator_->last();
  std::string extra;
  for (const auto& validator : options_.validators) {
    const config::Json fields = validator->validate(step_);
    for (const auto& [key, value] : fields.items()) {
      val[key] = value;
      extra += fmt::format(" {} {}", key,
                           value.is_number_float() ? fmt::format("{:.4g}", value.get<double>()) : value.dump());
    }
  }
  set_train_mode(model_, plan_);
  const bool best = best_step_ < 0 || v.total < best_loss_;
  if (best) {
    best_step_ = step_;
    best_loss_ = v.total;
  }
  append_metrics({{"step", step_}, {"val", val}, {"best", best}});
  if (comm_.leader())
    core::log_info("train", "step {} validation loss {}{}{}", step_, v.text(), extra, best ? " (best)" : "");
  return best;
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
  const std::string latest = folder_.latest_checkpoint();
  return latest.empty() ? std::string("none (no checkpoint was written)") : latest;
}

void Trainer::stop_nonfinite(const std::string& what) {
  const std::string why = tcfg_.nan_action == "stop" ? "" : " (more than train.max_skipped_steps skipped)";
  const std::string bad = first_nonfinite_parameter();
  if (!bad.empty()) {
    MSMEDCAP_FAIL("train: ", what, why, "; parameter '", bad,
                  "' is already non-finite, so nothing was saved; the last "
                  "good checkpoint is ",
                  last_good_checkpoint(), " (lower train.optimizer.lr or set train.clip_grad_norm)");
  }
  const std::string dir = save();  // every rank: save() ends with a barrier
  MSMEDCAP_FAIL("train: ", what, why, "; stopped after saving ", comm_.leader() ? dir : std::string("the checkpoint"),
                " (train.nan_action = skip skips such steps)");
}

TrainerState Trainer::state() const {
  TrainerState s;
  s.step = step_;
  s.epoch = step_ / steps_per_epoch_;
  s.stage = plan_.name();
  s.loader = loader_->state().to_json();
  s.skipped_steps = skipped_;
  s.best_step = best_step_;
  s.best_val_loss = best_loss_;
  s.loss_scale = runner_->scaler().scale();
  s.good_scaled_steps = runner_->scaler().good_steps();
  s.world_size = comm_.world_size();
  return s;
}

std::string Trainer::save(bool best) {
  // A diverged state never becomes checkpoints/latest (nor best): --resume and caption --run
  // keep the last good one.
  const std::string bad = first_nonfinite_parameter();
  MSMEDCAP_CHECK(bad.empty(), "train: parameter '", bad, "' is non-finite at step ", step_,
                 "; not saved, the last good "
                 "checkpoint is ",
                 last_good_checkpoint(), " (lower train.optimizer.lr or set train.clip_grad_norm)");
  std::string dir;
  if (comm_.leader()) {
    io::Checkpoint ckpt;
    for (const auto& [name, p] : params_) ckpt.model[name] = p.detach();
    ckpt.optimizer = optimizer_->state();
    ckpt.state = state().to_json();
    ckpt.config = resolved_;
    dir = io::save_checkpoint(folder_.path(), step_, ckpt);
    if (best) best_dir_ = dir;
    std::vector<std::string> protect{dir};
    if (!best_dir_.empty()) protect.push_back(best_dir_);
    io::prune_checkpoints(folder_.path(), tcfg_.keep, protect);
    core::log_info("train", "checkpoint {}{}", dir, best ? " (best so far)" : "");
  }
  comm_.barrier();
  last_saved_ = dir;
  last_saved_step_ = step_;
  return dir;
}

void Trainer::restore() {
  const std::string dir = folder_.latest_checkpoint();
  MSMEDCAP_CHECK(!dir.empty(), folder_.path(), ": --resume found no checkpoint (checkpoints/latest)");
  const io::Checkpoint ckpt = io::load_checkpoint(dir);
  const std::string where = dir + "/state.json";
  const TrainerState st = TrainerState::from_json(ckpt.state, where);
  MSMEDCAP_CHECK(st.stage == plan_.name(), where, ": the run trained stage '", st.stage, "', the config says '",
                 plan_.name(), "'");
  MSMEDCAP_CHECK(st.world_size == comm_.world_size(), where, ": saved by ", st.world_size, " processes, resumed by ",
                 comm_.world_size(), " (the data order is sharded by process count)");
  {
    torch::NoGradGuard no_grad;
    for (const auto& [name, p] : params_) {
      const auto it = ckpt.model.find(name);
      MSMEDCAP_CHECK(it != ckpt.model.end(), dir, "/model.safetensors: no tensor '", name, "'");
      MSMEDCAP_CHECK(it->second.sizes() == p.sizes(), dir, "/model.safetensors: '", name, "' has shape ",
                     it->second.sizes(), ", the model ", p.sizes());
      p.copy_(it->second);
    }
  }
  optimizer_->load_state(io::StateDictSource(ckpt.optimizer, dir + "/optimizer.safetensors"));
  step_ = st.step;
  skipped_ = st.skipped_steps;
  best_step_ = st.best_step;
  best_loss_ = st.best_val_loss;
  runner_->scaler().restore(st.loss_scale, st.good_scaled_steps);
  loader_->restore(data::LoaderState::from_json(st.loader, where));
  if (best_step_ >= 0) {
    const std::string best = folder_.checkpoint(best_step_);
    if (fs::exists(best)) best_dir_ = best;
  }
  last_saved_ = dir;
  last_saved_step_ = step_;
  if (comm_.leader()) folder_.rewind(step_, resolved_);  // the log continues from the checkpoint
  core::log_info("train", "resumed {} at step {} of {}", dir, step_, total_steps_);
}

void Trainer::skip_step(const std::string& what, double lr) {
  ++skipped_;
  if (tcfg_.nan_action == "stop" || skipped_ > tcfg_.max_skipped_steps) stop_nonfinite(what);
  core::log_warn("train", "{}; step skipped ({} so far)", what, skipped_);
  append_metrics({{"step", step_ + 1}, {"skipped", true}, {"lr", lr}});
}

void Trainer::log_step(const StepResult& r, int64_t epoch, double lr, double rate) {
  config::Json line = r.losses.to_json();
  line["step"] = step_;
  line["epoch"] = epoch;
  line["lr"] = lr;
  line["images_per_s"] = rate;
  line["rss_mb"] = core::resident_mb();
  line["peak_rss_mb"] = core::peak_resident_mb();
  if (r.grad_norm >= 0) line["grad_norm"] = r.grad_norm;
  if (runner_->scaler().enabled()) line["loss_scale"] = runner_->scaler().scale();
  append_metrics(line);
  if (comm_.leader())
    core::log_info("train", "step {}/{} loss {} lr {:.2e} {:.1f} img/s", step_, total_steps_, r.losses.text(), lr,
                   rate);
}

TrainResult Trainer::run() {
  if (options_.resume) {
    restore();
  } else if (comm_.leader()) {
    folder_.start(resolved_);
  }
  comm_.barrier();
  int64_t trainable = 0;
  for (const auto& [name, p] : params_) trainable += p.numel();
  std::unique_ptr<core::Progress> progress;
  if (comm_.leader()) {
    core::log_info(
        "train",
        "stage {}: {} trainable parameters in {} tensors; {} steps ({} per epoch, {} micro-batches of {} x {} "
        "process{})",
        plan_.name(), trainable, params_.size(), total_steps_, steps_per_epoch_, tcfg_.grad_accum,
        cfg_.loader.batch_size, comm_.world_size(), comm_.world_size() > 1 ? "es" : "");
    core::ProgressOptions po;
    po.unit = "step";
    progress = std::make_unique<core::Progress>("train", total_steps_ - step_, po);
  }

  TrainResult result;
  RateWindow window;
  while (step_ < total_steps_) {
    const int64_t epoch = step_ / steps_per_epoch_;
    const double lr = learning_rate(tcfg_.optimizer, step_, epoch, epochs_, total_steps_);
    optimizer_->set_lr(lr);
    const int turns_before = runner_->mask_turns_now();
    runner_->set_progress(static_cast<double>(step_) / static_cast<double>(total_steps_));
    if (turns_before != 0 && runner_->mask_turns_now() == 0)
      core::log_info("train", "step {}: sam_pretrain reads its images unturned from here (mask_symmetries_until {})",
                     step_, tcfg_.stage.mask_symmetries_until);
    int signal = 0;
    const StepResult r = runner_->step([this](int64_t) { return next_micro_batch(); }, step_,
                                       [&] {
                                         signal = options_.stop_signal ? options_.stop_signal->load() : 0;
                                         return signal != 0;
                                       });
    if (!r.nonfinite.empty()) {
      skip_step(r.nonfinite, lr);
      ++step_;
      if (progress) progress->advance();
      continue;
    }
    ++step_;
    result.last = r.losses;
    window.add(r.images);
    if (progress) progress->advance();
    if (step_ % tcfg_.log_every == 0 || step_ == total_steps_) log_step(r, epoch, lr, window.take());

    const bool epoch_end = step_ % steps_per_epoch_ == 0;
    const bool best = val_loader_ && (tcfg_.val_every > 0 ? step_ % tcfg_.val_every == 0 : epoch_end) && validate_now();
    if (best || step_ == total_steps_ || r.stop_requested ||
        (tcfg_.save_every > 0 ? step_ % tcfg_.save_every == 0 : epoch_end))
      save(best);
    if (r.stop_requested) {
      result.stopped_by_signal = signal != 0 ? signal : SIGTERM;
      core::log_warn("train", "stopped by signal {} at step {}; continue with --resume {}", result.stopped_by_signal,
                     step_, options_.run_dir);
      break;
    }
  }
  if (step_ != last_saved_step_) save();
  if (progress) progress->finish();
  result.steps = step_;
  result.skipped_steps = skipped_;
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
