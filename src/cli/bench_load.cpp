// msmedcap bench random-checkpoint --out DIR (--hub HUB_FOLDER | -c CFG...) [--dtype D]:
//   a full-size checkpoint of random values with the published names and shapes (a hub folder's
//   config.json + tensors.json, as tests/data/hub holds them) or of a config's model, sharded
//   as HF shards it, for load measurements (no weights can be downloaded here).
// msmedcap bench load (--hf DIR | -c CFG...) [--dtype D] [--record FILE]:
//   the time and peak resident memory of loading a model as the inference commands do.
#include <chrono>
#include <filesystem>
#include <fstream>
#include <iostream>

#include <ATen/ATen.h>

#include "bench_common.h"
#include "msmedcap/core/check.h"
#include "msmedcap/core/device.h"
#include "msmedcap/core/logging.h"
#include "msmedcap/io/tensor_store.h"
#include "msmedcap/models/pretrained.h"

namespace msmedcap::cli {

namespace {

struct RandomCheckpoint {
  ConfigOptions config;
  std::string hub, out, dtype = "fp32";
  int64_t shard_mb = 0;  // 0: HF's max_shard_size 5GB (config models; a hub list names its own shards)
};

/// N(0, 0.02) values in `dtype`; small so that no product in a later forward pass overflows.
at::Tensor random_tensor(const std::vector<int64_t>& shape, c10::ScalarType dtype) {
  return (at::randn(shape) * 0.02).to(dtype);
}

void write_index(const std::string& dir, const std::map<std::string, std::string>& weight_map, uint64_t total) {
  config::Json index = {{"metadata", {{"total_size", total}}}, {"weight_map", weight_map}};
  std::ofstream(dir + "/" + io::kIndexFileName) << index.dump(2) << "\n";
}

void make_random_checkpoint(const RandomCheckpoint& o, const GlobalOptions& globals) {
  namespace fs = std::filesystem;
  const auto dtype = core::parse_dtype(o.dtype);
  core::init_logging(globals.log_level.empty() ? "info" : globals.log_level);
  fs::create_directories(o.out);
  at::manual_seed(0);
  uint64_t total = 0;
  MSMEDCAP_CHECK(o.hub.empty() || o.shard_mb == 0,
                 "bench random-checkpoint: --shard-mb applies to config models; "
                 "a hub list names its own shards");
  if (!o.hub.empty()) {
    // One shard at a time, as the list assigns them, so that memory holds one shard at most.
    const auto list = config::read_json_file(o.hub + "/tensors.json");
    std::map<std::string, std::vector<std::pair<std::string, std::vector<int64_t>>>> shards;
    for (const auto& t : list.at("tensors")) {
      const std::string file = t.value("file", std::string(io::kWeightsFileName));
      shards[file].emplace_back(t.at("name").get<std::string>(), t.at("shape").get<std::vector<int64_t>>());
    }
    std::map<std::string, std::string> weight_map;
    for (const auto& [file, tensors] : shards) {
      io::StateDict dict;
      for (const auto& [name, shape] : tensors) {
        dict[name] = random_tensor(shape, dtype);
        total += dict[name].nbytes();
        weight_map[name] = file;
      }
      io::save_safetensors(o.out + "/" + file, dict);
      core::log_info("bench", "wrote {} ({} tensors)", file, tensors.size());
    }
    if (shards.size() > 1) write_index(o.out, weight_map, total);
    fs::copy_file(o.hub + "/config.json", o.out + "/config.json", fs::copy_options::overwrite_existing);
  } else {
    config::RunConfig run;
    resolve_run_config(run, o.config, globals);
    auto model = models::build_model(run.model);
    models::move_to(*model, {dtype, c10::Device(c10::kCPU)});
    io::StateDict dict = io::module_state_dict(*model);
    for (const auto& [name, t] : dict) total += t.nbytes();
    io::save_sharded(o.out, dict, static_cast<uint64_t>(o.shard_mb > 0 ? o.shard_mb : 5000) * 1'000'000);
  }
  std::cout << "random checkpoint: " << o.out << ", " << total / 1e9 << " GB in " << o.dtype << "\n";
}

struct LoadBench {
  ConfigOptions config;
  std::string hf_dir, record;
  bool copy = false;
};

void bench_load(const LoadBench& o, const GlobalOptions& globals) {
  config::RunConfig run;
  resolve_run_config(run, o.config, globals);
  // As inference loads (the file's pages shared where no conversion is needed), or as training
  // does (--copy: every tensor copied into memory of its own).
  const auto device = core::parse_device(run.runtime.device);
  const models::LoadTarget target{core::parse_dtype(run.runtime.dtype, "runtime.dtype"), device,
                                  device.is_cpu() && !o.copy};
  config::ModelConfig model_cfg = run.model;
  std::vector<config::WeightsSource> sources = run.weights;
  if (!o.hf_dir.empty()) {
    const std::string where = o.hf_dir + "/config.json";
    const auto hf = models::read_hf_config(o.hf_dir);
    MSMEDCAP_CHECK(models::hf_kind(hf, where) == models::HfKind::kBlip2, where,
                   ": bench load reads Blip2ForConditionalGeneration directories");
    model_cfg = models::model_config_from_hf_blip2(hf, where);
    sources = {{o.hf_dir, "", "hf"}};
  }
  MSMEDCAP_CHECK(!sources.empty(), "bench load: give --hf DIR or a config with weights");
  const double before_mb = core::resident_mb();
  const auto t0 = std::chrono::steady_clock::now();
  auto model = models::load_model(model_cfg, sources, run.load, target);
  core::synchronize(target.device);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  double bytes = 0;
  for (const auto& p : model->parameters()) bytes += static_cast<double>(p.nbytes());
  const double peak_mb = core::peak_resident_mb();
  const double weights_mb = bytes / (1024.0 * 1024.0);
  std::cout << "load" << (target.share_file_pages ? " (file pages shared)" : " (copied)") << ": " << weights_mb / 1024.0
            << " GiB of weights in " << run.runtime.dtype << " in " << seconds << " s; peak RSS " << peak_mb << " MiB ("
            << before_mb << " MiB before loading) = " << (peak_mb - 300.0) / weights_mb << " x weights + 300 MiB\n";
  append_record(o.record,
                {{"bench", "load"},
                 {"setting", (o.hf_dir.empty() ? std::string("config weights") : o.hf_dir) + ", " + run.runtime.dtype +
                                 (target.share_file_pages ? ", file pages shared" : ", copied")},
                 {"device", target.device.str()},
                 {"seconds", seconds},
                 {"weights_mb", weights_mb},
                 {"rss_before_mb", before_mb},
                 {"peak_rss_mb", peak_mb}});
}

}  // namespace

void register_bench_load(CLI::App* bench, const GlobalOptions& globals) {
  auto make = std::make_shared<RandomCheckpoint>();
  auto* m = bench->add_subcommand("random-checkpoint",
                                  "write a full-size random checkpoint from a hub tensor list or a config's model");
  add_config_options(m, make->config);
  m->add_option("--hub", make->hub, "folder with a hub config.json and tensors.json (tests/data/hub/...)");
  m->add_option("--out", make->out, "model folder to write")->required();
  m->add_option("--dtype", make->dtype, "fp32, bf16 or fp16");
  m->add_option("--shard-mb", make->shard_mb, "largest shard in MB (config models; default 5000)")
      ->check(CLI::PositiveNumber);
  m->callback([make, &globals] { make_random_checkpoint(*make, globals); });

  auto load = std::make_shared<LoadBench>();
  auto* l = bench->add_subcommand("load", "time and peak memory of loading a model (runtime.dtype / --dtype)");
  add_config_options(l, load->config);
  l->add_option("--hf", load->hf_dir, "HF Blip2ForConditionalGeneration directory");
  l->add_option("--record", load->record, "append a JSON line to this file");
  l->add_flag("--copy", load->copy, "copy every tensor, as training loads (default: as inference, file pages shared)");
  l->callback([load, &globals] { bench_load(*load, globals); });
}

}  // namespace msmedcap::cli
