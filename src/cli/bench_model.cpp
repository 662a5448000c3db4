// msmedcap bench matmul | membw | linear | train-step | generate | table: the model benchmarks. Each builds the
// config's model with random weights (torch's default initialisation: no denormal values), feeds
// it random pixels or random cached-feature tensors of the real shapes, times warm iterations
// and reports throughput beside the analytic FLOPs of models/flops.h.
#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>
#include <torch/csrc/autograd/profiler_legacy.h>
#include <torch/nn/functional/normalization.h>

#include <chrono>
#include <cmath>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <map>
#include <optional>
#include <sstream>

#include "bench_common.h"
#include "msmedcap/core/check.h"
#include "msmedcap/core/compat.h"
#include "msmedcap/core/device.h"
#include "msmedcap/core/logging.h"
#include "msmedcap/core/threads.h"
#include "msmedcap/inference/run_setup.h"
#include "msmedcap/inference/search.h"
#include "msmedcap/models/flops.h"
#include "msmedcap/models/packed_linear.h"
#include "msmedcap/models/pretrained.h"
#include "msmedcap/training/communicator.h"
#include "msmedcap/training/optimizer.h"
#include "msmedcap/training/stage_plan.h"
#include "msmedcap/training/stages.h"
#include "msmedcap/training/step.h"

namespace msmedcap::cli {

namespace {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

struct Inputs {
  std::string clip = "live", sam = "cached";  // live pixels or cached encoder outputs
};

/// Random inputs of the shapes the model reads: pixels in [-1, 1] for a live branch, encoder
/// outputs (unit normal) for a cached one.
models::ImageInputs random_inputs(const config::ModelConfig& cfg, int64_t batch, const Inputs& in, bool clip, bool sam,
                                  const c10::Device& device) {
  models::ImageInputs x;
  const auto opts = at::TensorOptions().device(device);
  if (clip && cfg.use_clip) {
    const int64_t s = cfg.vision.image_size, g = s / cfg.vision.patch_size;
    if (in.clip == "live")
      x.clip_pixels = at::rand({batch, 3, s, s}, opts) * 2 - 1;
    else
      x.clip_features = at::randn({batch, g * g + 1, cfg.vision.hidden_size}, opts);
  }
  if (sam && cfg.use_sam) {
    const int64_t s = cfg.sam.image_size, g = s / cfg.sam.patch_size;
    if (in.sam == "live")
      x.sam_pixels = at::rand({batch, 3, s, s}, opts) * 2 - 1;
    else
      x.sam_embeddings = at::randn({batch, cfg.sam.output_channels, g, g}, opts);
  }
  return x;
}

void add_input_options(CLI::App* cmd, Inputs& in) {
  const auto kinds = CLI::IsMember({"live", "cached"});
  cmd->add_option("--clip-input", in.clip, "CLIP branch: live pixels through the ViT, or cached features")
      ->check(kinds)
      ->capture_default_str();
  cmd->add_option("--sam-input", in.sam, "SAM branch: live 1024 px pixels through SAM, or cached embeddings")
      ->check(kinds)
      ->capture_default_str();
}

std::string fixed(double v, int digits) {
  std::ostringstream s;
  s << std::fixed << std::setprecision(digits) << v;
  return s.str();
}

// ---------------------------------------------------------------- matmul
struct MatmulBench {
  int64_t size = 2048, repeats = 10;
  std::string record;
};

void bench_matmul(const MatmulBench& o, const c10::Device& device) {
  const auto a = at::randn({o.size, o.size}, at::TensorOptions().device(device));
  const auto b = at::randn({o.size, o.size}, at::TensorOptions().device(device));
  auto c = at::mm(a, b);  // warm-up: thread pool, BLAS buffers
  core::synchronize(device);
  const auto t0 = Clock::now();
  for (int64_t i = 0; i < o.repeats; ++i) c = at::mm(a, b);
  core::synchronize(device);
  const double s = seconds_since(t0);
  const double gflops = 2.0 * std::pow(static_cast<double>(o.size), 3) * o.repeats / s / 1e9;
  std::cout << "matmul: float32 " << o.size << "^3 on " << device.str() << ", " << at::get_num_threads()
            << " threads: " << fixed(gflops, 1) << " GFLOP/s\n";
  append_record(o.record, {{"bench", "matmul"},
                           {"setting", "float32 " + std::to_string(o.size) + "^3"},
                           {"device", device.str()},
                           {"threads", at::get_num_threads()},
                           {"gflops", gflops}});
}

// ---------------------------------------------------------------- membw
struct MembwBench {
  int64_t mib = 1024, repeats = 5;
  std::string record;
};

/// The memory-read bound: a float32 sum over a buffer far larger than the caches, as decoding
/// reads its weights (each byte once per token). Best of the repeats.
void bench_membw(const MembwBench& o) {
  const auto a = at::rand({o.mib * (1 << 18)});  // o.mib MiB of float32, every page written
  double best = 0;
  for (int64_t i = 0; i <= o.repeats; ++i) {
    const auto t0 = Clock::now();
    const double sum = a.sum().item<double>();
    const double gbs = static_cast<double>(a.nbytes()) / seconds_since(t0) / 1e9;
    MSMEDCAP_CHECK(std::isfinite(sum), "bench membw: non-finite sum");
    if (i > 0) best = std::max(best, gbs);  // the first pass warms the thread pool
  }
  std::cout << "membw: float32 sum over " << o.mib << " MiB, " << at::get_num_threads()
            << " threads: " << fixed(best, 2) << " GB/s (best of " << o.repeats << ")\n";
  append_record(o.record, {{"bench", "membw"},
                           {"setting", "sum over " + std::to_string(o.mib) + " MiB"},
                           {"device", "cpu"},
                           {"threads", at::get_num_threads()},
                           {"gbs", best}});
}

// ---------------------------------------------------------------- linear
struct LinearBench {
  int64_t rows = 1, in = 768, out = 3072, layers = 48, repeats = 20;
  std::string format = "fp32", record;
  bool aten = false;
};

/// A decode-sized product y = x W^T, rows x in -> out, over `layers` distinct weights (so the
/// weights come from memory, not the caches, as in a decoder step): the packed loop in one format
/// or ATen's float32 product (--aten). Reports the weight bytes read per second.
void bench_linear(const LinearBench& o) {
  const auto format = models::parse_weight_format(o.format, "bench linear --format");
  MSMEDCAP_CHECK(!o.aten || format == models::WeightFormat::kFloat32,
                 "bench linear: --aten multiplies float32 weights");
  std::vector<at::Tensor> weights;
  std::vector<models::PackedWeight> packed;
  for (int64_t l = 0; l < o.layers; ++l) {
    weights.push_back(at::randn({o.out, o.in}) * 0.02);
    if (!o.aten) packed.push_back(models::pack_weight(weights.back(), format));
  }
  const auto x = at::randn({o.rows, o.in});
  c10::InferenceMode guard;
  auto run = [&] {
    for (int64_t l = 0; l < o.layers; ++l) {
      const auto y = o.aten ? at::linear(x, weights[l]) : models::packed_linear(x, packed[l]);
    }
  };
  run();  // warm-up
  const auto t0 = Clock::now();
  for (int64_t r = 0; r < o.repeats; ++r) run();
  const double s = seconds_since(t0) / static_cast<double>(o.repeats * o.layers);
  const double bytes = o.aten ? 4.0 * o.in * o.out : static_cast<double>(packed[0].nbytes());
  const std::string setting = std::string(o.aten ? "aten fp32" : "packed " + o.format) + ", " + std::to_string(o.rows) +
                              " x " + std::to_string(o.in) + " -> " + std::to_string(o.out);
  std::cout << "linear: " << setting << ", " << at::get_num_threads() << " threads: " << fixed(s * 1e6, 1)
            << " us per product, " << fixed(bytes / s / 1e9, 2) << " GB/s of weights, "
            << fixed(2.0 * o.rows * o.in * o.out / s / 1e9, 1) << " GFLOP/s"
            << (o.aten || models::packed_kernel_available() ? "" : " (no AVX-512: the ATen fallback)") << "\n";
  append_record(o.record, {{"bench", "linear"},
                           {"setting", setting},
                           {"device", "cpu"},
                           {"threads", at::get_num_threads()},
                           {"seconds", s},
                           {"gbs", bytes / s / 1e9},
                           {"gflops", 2.0 * o.rows * o.in * o.out / s / 1e9}});
}

// ---------------------------------------------------------------- train-step
struct StepBench {
  ConfigOptions config;
  Inputs inputs;
  int64_t batch = 8, text = 32, steps = 3, warmup = 1;
  std::string name, record, profile;
};

void bench_train_step(const StepBench& o, const GlobalOptions& globals) {
  config::RunConfig cfg;
  resolve_run_config(cfg, o.config, globals);
  MSMEDCAP_CHECK(cfg.runtime.dtype == "fp32",
                 "runtime.dtype: bench train-step keeps float32 weights as train does "
                 "(train.precision runs autocast on CUDA)");
  const auto device = core::parse_device(cfg.runtime.device);
  const training::StagePlan plan(cfg.train.stage, cfg.model);
  torch::manual_seed(static_cast<uint64_t>(cfg.runtime.seed));
  auto model = models::build_model(cfg.model);
  model->to(device);
  const auto params = training::apply_stage(*model, plan);
  // The frozen parts in train.frozen_dtype, as the trainer stores them.
  training::store_frozen(*model, training::frozen_dtype(cfg.train.frozen_dtype, device));
  training::Optimizer optimizer(params, cfg.train.optimizer);
  std::vector<at::Tensor> tensors;
  for (const auto& [name, p] : params) tensors.push_back(p);
  // The trainer's own step, on random inputs of the real shapes instead of a loader's batches: each
  // of its train.grad_accum micro-batches is the same --batch rows.
  auto comm = training::local_communicator();
  const int64_t accum = cfg.train.grad_accum;
  const auto branch = plan.qformer_text_branch();
  const auto& q = branch == config::Branch::kSam ? cfg.model.sam_qformer : cfg.model.qformer;
  const int64_t vocab = branch ? q.vocab_size : cfg.model.decoder.vocab_size;
  training::StepRunner runner(*model, plan, cfg.train, static_cast<uint64_t>(cfg.runtime.seed), device, *comm,
                              optimizer, tensors, nullptr, vocab - 1);
  training::StepInputs in;
  in.images = random_inputs(cfg.model, o.batch, o.inputs, plan.reads(config::Branch::kClip),
                            plan.reads(config::Branch::kSam), device);
  in.text_ids = at::randint(3, vocab, {o.batch, o.text}, at::TensorOptions().dtype(at::kLong).device(device));
  in.text_mask = at::ones_like(in.text_ids);
  for (int64_t i = 0; i < o.batch; ++i) in.positions.push_back(i);
  if (plan.reads_masks()) {  // sam_pretrain: a few random structures per image, lesions from mask_classes' first_id
    const int64_t top = plan.mask_classes() > 0 ? cfg.train.stage.mask_classes.first_id + 2 : 4;
    in.masks = at::randint(0, top, {o.batch, cfg.model.sam.image_size, cfg.model.sam.image_size}, at::kLong);
    if (plan.mask_classes() > 0) in.mask_classes = at::randint(0, plan.mask_classes(), {o.batch}, at::kLong);
  }

  auto step = [&](int64_t index) {
    const auto r = runner.step([&](int64_t) { return std::optional<training::StepInputs>(in); }, index);
    MSMEDCAP_CHECK(r.nonfinite.empty(), "bench train-step: ", r.nonfinite);
    return r.losses.total;  // the step read its losses: the device has finished
  };
  for (int64_t i = 0; i < o.warmup; ++i) step(i);
  core::synchronize(device);
  double loss = 0;
  auto timed = [&] {
    const auto t0 = Clock::now();
    for (int64_t i = 0; i < o.steps; ++i) loss = step(o.warmup + i);
    core::synchronize(device);
    return seconds_since(t0) / static_cast<double>(o.steps);
  };
  double s = 0;
  if (o.profile.empty()) {
    s = timed();
  } else {  // LibTorch's profiler over the timed steps: a Chrome trace (scripts/profile_summary.py)
    torch::autograd::profiler::RecordProfile profile(o.profile);
    s = timed();
  }
  const auto& stage = cfg.train.stage;
  const double flop =
      static_cast<double>(accum) *
      models::flops::training_step(cfg.model, stage, o.batch, o.text, o.inputs.clip == "live", o.inputs.sam == "live");
  const double images = static_cast<double>(o.batch * accum);
  const std::string setting = o.name.empty() ? stage.name : o.name;
  std::string inputs;  // the branches the plan feeds, each live or cached
  if (plan.reads(config::Branch::kClip)) inputs = "clip " + o.inputs.clip;
  if (plan.reads(config::Branch::kSam)) inputs += (inputs.empty() ? "sam " : ", sam ") + o.inputs.sam;
  if (inputs.empty()) inputs = "text";
  const std::string batch =
      std::to_string(o.batch) + (accum > 1 ? " x " + std::to_string(accum) + " micro-batches" : "");
  std::cout << "train-step " << setting << " (" << inputs << ", batch " << batch << ", text " << o.text
            << "): " << fixed(s, 3) << " s/step, " << fixed(images / s, 2) << " images/s, " << fixed(flop / 1e9, 1)
            << " GFLOP/step, " << fixed(flop / s / 1e9, 1) << " GFLOP/s, peak RSS "
            << fixed(core::peak_resident_mb(), 0) << " MiB, loss " << fixed(loss, 3) << "\n";
  append_record(o.record, {{"bench", "train-step"},
                           {"setting", setting + " (" + inputs + ", batch " + batch + ")"},
                           {"device", device.str()},
                           {"threads", at::get_num_threads()},
                           {"seconds", s},
                           {"images_per_s", images / s},
                           {"gflop", flop / 1e9},
                           {"gflops", flop / s / 1e9},
                           {"peak_rss_mb", core::peak_resident_mb()}});
}

// ---------------------------------------------------------------- generate
struct GenerateBench {
  ConfigOptions config;
  Inputs inputs;
  int64_t batch = 8, beams = 1, new_tokens = 30, repeats = 2, warmup = 1;
  std::string dtype = "fp32", record, profile;
  bool aten = false;  // the decoder's products through ATen, its weights not packed
};

void bench_generate(const GenerateBench& o, const GlobalOptions& globals) {
  config::RunConfig cfg;
  resolve_run_config(cfg, o.config, globals);
  const auto device = core::parse_device(cfg.runtime.device);
  // The global --dtype (runtime.dtype) and this command's own --dtype name the same thing.
  MSMEDCAP_CHECK(o.dtype == "fp32" || cfg.runtime.dtype == "fp32" || o.dtype == cfg.runtime.dtype,
                 "bench generate: --dtype ", o.dtype, " disagrees with runtime.dtype ", cfg.runtime.dtype);
  const std::string dtype_name = o.dtype != "fp32" ? o.dtype : cfg.runtime.dtype;
  config::RuntimeConfig runtime = cfg.runtime;
  runtime.dtype = dtype_name;
  runtime.validate();
  MSMEDCAP_CHECK(!o.aten || (dtype_name != "int8" && dtype_name != "w8a8"),
                 "bench generate: --aten multiplies float weights; ", dtype_name, " is packed");
  const auto dtype = inference::load_dtype(runtime);
  const auto packing = inference::decode_weight_format(runtime);
  const bool pack = !o.aten && packing.has_value();
  const auto format = pack ? packing.value() : models::WeightFormat::kFloat32;
  torch::manual_seed(static_cast<uint64_t>(cfg.runtime.seed));
  auto model = models::build_model(cfg.model);
  model->to(device, dtype);
  model->eval();
  if (pack) model->decoder().pack_weights(format);
  const auto images = random_inputs(cfg.model, o.batch, o.inputs, true, true, device);
  auto cast = [&](models::ImageInputs x) {
    for (auto* t : {&x.clip_pixels, &x.sam_pixels, &x.clip_features, &x.sam_embeddings}) {
      if (t->defined()) *t = t->to(dtype);
    }
    return x;
  };
  const auto typed = cast(images);
  inference::GenerateOptions g;
  g.max_new_tokens = o.new_tokens;
  g.num_beams = o.beams;
  g.eos_token_id.reset();  // every row decodes new_tokens tokens: equal work for each setting
  g.pad_token_id = cfg.model.decoder.pad_token_id;
  auto& lm = model->decoder();
  const auto bos =
      at::full({o.batch, 1}, cfg.model.decoder.bos_token_id, at::TensorOptions().dtype(at::kLong).device(device));

  double encode_s = 0, decode_s = 0;
  int64_t produced = 0;
  c10::InferenceMode guard;
  for (int64_t r = 0; r < o.warmup + o.repeats; ++r) {
    core::synchronize(device);
    auto t0 = Clock::now();
    const auto prefix = model->encode(typed);
    const auto embeds = at::cat(std::vector<at::Tensor>{prefix.embeds, lm.embed(bos).to(prefix.embeds.dtype())}, 1);
    core::synchronize(device);
    const double e = seconds_since(t0);
    // LibTorch's profiler over the timed batches' decoding only (scripts/profile_summary.py).
    std::optional<torch::autograd::profiler::RecordProfile> profile;
    if (!o.profile.empty() && r >= o.warmup) profile.emplace(o.profile + "." + std::to_string(r - o.warmup));
    t0 = Clock::now();
    const auto out = inference::generate(lm, embeds, {}, g);
    core::synchronize(device);
    const double d = seconds_since(t0);
    profile.reset();
    if (r >= o.warmup) {
      encode_s += e;
      decode_s += d;
      produced += out.tokens.size(1);
    }
  }
  const double n = static_cast<double>(o.repeats);
  const auto flop = models::flops::generation(cfg.model, o.batch, 1, o.new_tokens, o.beams, o.inputs.clip == "live",
                                              o.inputs.sam == "live");
  const double total = (encode_s + decode_s) / n;
  const double images_per_s = o.batch / total;
  const double tokens_per_s = static_cast<double>(o.batch) * static_cast<double>(produced) / decode_s;
  const double gflops = (flop.encode + flop.decode) / total / 1e9;
  const std::string setting = (o.beams == 1 ? std::string("greedy") : "beam " + std::to_string(o.beams)) + ", batch " +
                              std::to_string(o.batch) + ", " + std::to_string(o.new_tokens) + " tokens (clip " +
                              o.inputs.clip + ", sam " + o.inputs.sam +
                              (dtype_name == "fp32" ? "" : ", " + dtype_name) + (o.aten ? ", aten" : "") + ")";
  // The decoder's weight bytes a decode step reads: every matrix once (the token table as the
  // tied head's), in the packed format's width; position tables are read a row at a time.
  double step_bytes = 0;
  const double width = pack && (format == models::WeightFormat::kInt8 || format == models::WeightFormat::kW8A8) ? 1.0
                       : pack && format == models::WeightFormat::kBFloat16
                           ? 2.0
                           : static_cast<double>(c10::elementSize(dtype));
  for (const auto& item : lm.named_parameters()) {
    const auto& key = item.key();
    if (item.value().dim() == 2 && key.find("embed_positions") == std::string::npos &&
        key.find("wpe") == std::string::npos)
      step_bytes += static_cast<double>(item.value().numel()) * width;
  }
  const double steps = static_cast<double>(o.new_tokens) * n;  // decode steps timed (the prefill is one of them)
  const double weight_gbs = step_bytes * steps / decode_s / 1e9;
  std::cout << "generate " << setting << ": " << fixed(images_per_s, 2) << " images/s, " << fixed(tokens_per_s, 1)
            << " new tokens/s; encode " << fixed(encode_s / n, 3) << " s, decode " << fixed(decode_s / n, 3)
            << " s per batch; " << fixed(gflops, 1) << " GFLOP/s (decode alone "
            << fixed(flop.decode / (decode_s / n) / 1e9, 1) << "), " << fixed(decode_s / steps * 1e3, 1)
            << " ms per decode step, decoder weights " << fixed(step_bytes / 1e6, 0) << " MB read at "
            << fixed(weight_gbs, 2) << " GB/s, peak RSS " << fixed(core::peak_resident_mb(), 0) << " MiB\n";
  append_record(o.record, {{"bench", "generate"},
                           {"setting", setting},
                           {"device", device.str()},
                           {"threads", at::get_num_threads()},
                           {"seconds", total},
                           {"images_per_s", images_per_s},
                           {"tokens_per_s", tokens_per_s},
                           {"gflop", (flop.encode + flop.decode) / 1e9},
                           {"gflops", gflops},
                           {"decode_ms_per_step", decode_s / steps * 1e3},
                           {"weight_gbs", weight_gbs},
                           {"peak_rss_mb", core::peak_resident_mb()}});
}

// ---------------------------------------------------------------- table
/// A markdown table of a --record file: one row per line, GFLOP/s also as a share of the
/// matmul rows' best figure on the same device, and weight bytes read per second (decoding,
/// decode-sized products) as a share of the membw rows' best figure.
void print_table(const std::string& file) {
  std::ifstream in(file);
  MSMEDCAP_CHECK(in.good(), file, ": cannot open the benchmark record");
  std::vector<config::Json> rows;
  std::string line;
  for (int64_t n = 1; std::getline(in, line); ++n) {
    if (line.empty()) continue;
    try {
      rows.push_back(config::Json::parse(line));
    } catch (const std::exception& e) {
      MSMEDCAP_FAIL(file, ":", n, ": not a JSON line (", e.what(), ")");
    }
    MSMEDCAP_CHECK(rows.back().is_object() && rows.back().contains("bench") && rows.back().contains("setting"), file,
                   ":", n, ": a record needs \"bench\" and \"setting\"");
  }
  std::map<std::string, double> peak;  // device -> best matmul GFLOP/s
  double membw = 0;                    // best membw GB/s (CPU)
  for (const auto& r : rows) {
    if (r["bench"] == "matmul") {
      auto& p = peak[r.value("device", "cpu")];
      p = std::max(p, r.value("gflops", 0.0));
    }
    if (r["bench"] == "membw") membw = std::max(membw, r.value("gbs", 0.0));
  }
  auto cell = [](const config::Json& r, const char* key, int digits) {
    return r.contains(key) && r[key].is_number() ? fixed(r[key].get<double>(), digits) : std::string();
  };
  std::cout
      << "| benchmark | setting | device | images/s | new tokens/s | s/iter | GFLOP/iter | GFLOP/s | % of matmul | "
         "ms/step | weights GB/s | % of membw | peak RSS MiB "
         "|\n|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n";
  for (const auto& r : rows) {
    const std::string device = r.value("device", "cpu");
    std::string share;
    if (r["bench"] != "matmul" && peak.count(device) && peak[device] > 0 && r.contains("gflops")) {
      share = fixed(100.0 * r["gflops"].get<double>() / peak[device], 0);
    }
    const bool product = r["bench"] == "linear";
    const char* gbs_key = product || r["bench"] == "membw" ? "gbs" : "weight_gbs";
    std::string step = product && r.contains("seconds") ? fixed(r["seconds"].get<double>() * 1e3, 3)
                                                        : cell(r, "decode_ms_per_step", 1);
    std::string bound;
    if (r["bench"] != "membw" && membw > 0 && r.contains(gbs_key))
      bound = fixed(100.0 * r[gbs_key].get<double>() / membw, 0);
    std::cout << "| " << r["bench"].get<std::string>() << " | " << r["setting"].get<std::string>() << " | " << device
              << " | " << cell(r, "images_per_s", 2) << " | " << cell(r, "tokens_per_s", 1) << " | "
              << (product ? std::string() : cell(r, "seconds", 3)) << " | " << cell(r, "gflop", 1) << " | "
              << cell(r, "gflops", 1) << " | " << share << " | " << step << " | " << cell(r, gbs_key, 2) << " | "
              << bound << " | " << cell(r, "peak_rss_mb", 0) << " |\n";
  }
}

}  // namespace

void append_record(const std::string& file, const config::Json& line) {
  if (file.empty()) return;
  std::ofstream out(file, std::ios::app);
  MSMEDCAP_CHECK(out.good(), file, ": cannot append the benchmark record");
  out << line.dump() << "\n";
  MSMEDCAP_CHECK(out.good(), file, ": write failed");
}

void register_bench_model(CLI::App* bench, const GlobalOptions& globals) {
  auto mm = std::make_shared<MatmulBench>();
  auto* matmul = bench->add_subcommand("matmul", "float32 matrix-product GFLOP/s of this machine (the roofline)");
  matmul->add_option("--size", mm->size, "matrix side")->check(CLI::Range(16, 32768))->capture_default_str();
  matmul->add_option("--repeats", mm->repeats, "timed products")->check(CLI::PositiveNumber)->capture_default_str();
  matmul->add_option("--record", mm->record, "append the figures as a JSON line to this file");
  matmul->callback([mm, &globals] {
    if (!globals.log_level.empty()) core::init_logging(globals.log_level);
    core::configure_threads(globals.threads < 0 ? 0 : globals.threads);
    bench_matmul(*mm, core::parse_device(globals.device.empty() ? "cpu" : globals.device));
  });

  auto mb = std::make_shared<MembwBench>();
  auto* membw = bench->add_subcommand("membw", "memory read GB/s of this machine (the bound of CPU decoding)");
  membw->add_option("--mib", mb->mib, "buffer size")->check(CLI::Range(64, 65536))->capture_default_str();
  membw->add_option("--repeats", mb->repeats, "timed sums")->check(CLI::PositiveNumber)->capture_default_str();
  membw->add_option("--record", mb->record, "append the figures as a JSON line to this file");
  membw->callback([mb, &globals] {
    if (!globals.log_level.empty()) core::init_logging(globals.log_level);
    core::configure_threads(globals.threads < 0 ? 0 : globals.threads);
    bench_membw(*mb);
  });

  auto lb = std::make_shared<LinearBench>();
  auto* lin = bench->add_subcommand("linear", "a decode-sized product in a weight format (packed loop or ATen)");
  lin->add_option("--rows", lb->rows, "rows of x (batch x beams)")->check(CLI::Range(1, 4096))->capture_default_str();
  lin->add_option("--in", lb->in, "K")->check(CLI::Range(1, 65536))->capture_default_str();
  lin->add_option("--out", lb->out, "N")->check(CLI::Range(1, 262144))->capture_default_str();
  lin->add_option("--layers", lb->layers, "distinct weights cycled through")
      ->check(CLI::Range(1, 4096))
      ->capture_default_str();
  lin->add_option("--repeats", lb->repeats, "timed passes")->check(CLI::PositiveNumber)->capture_default_str();
  lin->add_option("--format", lb->format, "fp32, bf16, int8 or w8a8")
      ->check(CLI::IsMember({"fp32", "bf16", "int8", "w8a8"}))
      ->capture_default_str();
  lin->add_flag("--aten", lb->aten, "ATen's float32 product instead of the packed loop");
  lin->add_option("--record", lb->record, "append the figures as a JSON line to this file");
  lin->callback([lb, &globals] {
    if (!globals.log_level.empty()) core::init_logging(globals.log_level);
    core::configure_threads(globals.threads < 0 ? 0 : globals.threads);
    bench_linear(*lb);
  });

  auto st = std::make_shared<StepBench>();
  auto* step = bench->add_subcommand("train-step", "a training step (forward, backward, AdamW) of train.stage.name");
  add_config_options(step, st->config);
  add_input_options(step, st->inputs);
  step->add_option("--batch", st->batch, "images per step")->check(CLI::PositiveNumber)->capture_default_str();
  step->add_option("--text", st->text, "caption tokens per image")->check(CLI::Range(2, 4096))->capture_default_str();
  step->add_option("--steps", st->steps, "timed steps")->check(CLI::PositiveNumber)->capture_default_str();
  step->add_option("--warmup", st->warmup, "untimed steps first")->check(CLI::NonNegativeNumber)->capture_default_str();
  step->add_option("--name", st->name, "the row's name (default: the stage)");
  step->add_option("--record", st->record, "append the figures as a JSON line to this file");
  step->add_option("--profile", st->profile,
                   "write LibTorch's profile of the timed steps (Chrome trace JSON; scripts/profile_summary.py)");
  step->callback([st, &globals] { bench_train_step(*st, globals); });

  auto gb = std::make_shared<GenerateBench>();
  auto* gen = bench->add_subcommand("generate", "captioning: encode + greedy or beam decoding to a fixed length");
  add_config_options(gen, gb->config);
  add_input_options(gen, gb->inputs);
  gen->add_option("--batch", gb->batch, "images per batch")->check(CLI::PositiveNumber)->capture_default_str();
  gen->add_option("--beams", gb->beams, "1 = greedy")->check(CLI::PositiveNumber)->capture_default_str();
  gen->add_option("--new-tokens", gb->new_tokens, "tokens per caption (no end token)")
      ->check(CLI::Range(1, 1024))
      ->capture_default_str();
  gen->add_option("--repeats", gb->repeats, "timed batches")->check(CLI::PositiveNumber)->capture_default_str();
  gen->add_option("--warmup", gb->warmup, "untimed batches first")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  gen->add_option("--dtype", gb->dtype, "weights and activations (fp16 needs CUDA; int8, w8a8: CPU decoder weights)")
      ->check(CLI::IsMember({"fp32", "bf16", "fp16", "int8", "w8a8"}))
      ->capture_default_str();
  gen->add_flag("--aten", gb->aten, "the decoder's products through ATen, its weights not packed (the CPU baseline)");
  gen->add_option("--record", gb->record, "append the figures as a JSON line to this file");
  gen->add_option("--profile", gb->profile,
                  "write LibTorch's profile of each timed batch's decoding to FILE.0, FILE.1, ... (Chrome trace "
                  "JSON; scripts/profile_summary.py); the profiler's own cost is in the timings");
  gen->callback([gb, &globals] { bench_generate(*gb, globals); });

  auto table_file = std::make_shared<std::string>();
  auto* table = bench->add_subcommand("table", "a markdown table of a --record file");
  table->add_option("file", *table_file, "JSON lines written by --record")->required();
  table->callback([table_file] { print_table(*table_file); });
}

}  // namespace msmedcap::cli
