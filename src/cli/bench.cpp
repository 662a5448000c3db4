// msmedcap bench loader [--images N] [--size PX] [--workers W] [--batch-size B] [--epochs E]:
// the data loader's throughput on JPEG files written for the run (decode + CLIP 224 + SAM 1024).
// The model benchmarks (matmul, train-step, generate, table) are in bench_model.cpp.
#include <chrono>
#include <filesystem>
#include <iostream>

#include "bench_common.h"
#include "msmedcap/core/logging.h"
#include "msmedcap/core/threads.h"
#include "msmedcap/data/image_io.h"
#include "msmedcap/data/loader.h"

namespace msmedcap::cli {

namespace {
struct LoaderBench {
  int64_t images = 64, size = 512, epochs = 2;
  config::LoaderConfig loader;
  config::ImageTransformConfig transform;
  std::string dir, record;
  bool sam = true;
};

void bench_loader(const LoaderBench& o) {
  namespace fs = std::filesystem;
  const std::string dir = o.dir.empty() ? (fs::temp_directory_path() / "msmedcap-bench-loader").string() : o.dir;
  fs::create_directories(dir);
  std::vector<data::Sample> samples;
  for (int64_t i = 0; i < o.images; ++i) {
    const std::string path = dir + "/img" + std::to_string(i) + "_" + std::to_string(o.size) + ".jpg";
    if (!fs::exists(path)) data::write_noise_jpeg(path, o.size, static_cast<uint64_t>(i) + 1);
    samples.push_back({std::to_string(i), path, {"a caption"}, {}, {}});
  }
  auto mix = std::make_shared<data::Mixture>(std::vector<std::vector<data::Sample>>{samples}, std::vector<double>{1});
  data::ExampleOptions ex;
  ex.sam = o.sam;
  data::DataLoader loader(mix, data::make_example_processor(o.transform, ex), o.loader);
  int64_t n = 0;
  double seconds = 0;
  for (int64_t e = 0; e < o.epochs; ++e) {
    const auto t0 = std::chrono::steady_clock::now();
    int64_t k = 0;
    while (auto b = loader.next()) k += static_cast<int64_t>(b->samples.size());
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (e > 0 || o.epochs == 1) {  // the first epoch warms the page cache and allocators
      n += k;
      seconds += s;
    }
  }
  std::cout << "loader: " << o.images << " JPEG " << o.size << "x" << o.size << " -> CLIP " << o.transform.clip_size
            << (o.sam ? " + SAM " + std::to_string(o.transform.sam_size) : std::string()) << ", " << o.loader.workers
            << " workers, batch " << o.loader.batch_size << ": " << n / std::max(seconds, 1e-9) << " images/s (" << n
            << " images in " << seconds << " s)\n";
  append_record(o.record,
                {{"bench", "loader"},
                 {"setting", std::to_string(o.size) + " px JPEG -> CLIP " + std::to_string(o.transform.clip_size) +
                                 (o.sam ? " + SAM " + std::to_string(o.transform.sam_size) : std::string()) + ", " +
                                 std::to_string(o.loader.workers) + " workers"},
                 {"device", "cpu"},
                 {"images_per_s", n / std::max(seconds, 1e-9)},
                 {"seconds", seconds / std::max<double>(static_cast<double>(n), 1.0) * o.loader.batch_size}});
}
}  // namespace

void register_bench(CLI::App& app, const GlobalOptions& globals) {
  auto* cmd = app.add_subcommand("bench", "benchmarks (prints a line per measurement)");
  cmd->require_subcommand(1);
  auto o = std::make_shared<LoaderBench>();
  o->loader.batch_size = 8;
  o->loader.workers = core::hardware_threads();
  auto* loader = cmd->add_subcommand("loader", "data loader images/s: JPEG decode + CLIP and SAM transforms");
  loader->add_option("--images", o->images, "JPEG files to write and read")->check(CLI::PositiveNumber);
  loader->add_option("--size", o->size, "JPEG side in pixels")->check(CLI::Range(16, 8192));
  loader->add_option("--workers", o->loader.workers, "decoding threads (default: all cores)")
      ->check(CLI::NonNegativeNumber);
  loader->add_option("--batch-size", o->loader.batch_size, "batch size")->check(CLI::PositiveNumber);
  loader->add_option("--epochs", o->epochs, "passes; the first is a warm-up when there are several")
      ->check(CLI::PositiveNumber);
  loader->add_option("--dir", o->dir, "where the JPEG files go (default: a temp folder, reused)");
  loader->add_flag("!--no-sam", o->sam, "CLIP branch only");
  loader->add_option("--record", o->record, "append the figures as a JSON line to this file");
  loader->callback([o, &globals] {
    if (!globals.log_level.empty()) core::init_logging(globals.log_level);
    bench_loader(*o);
  });
  register_bench_model(cmd, globals);
  register_bench_load(cmd, globals);
}

}  // namespace msmedcap::cli
