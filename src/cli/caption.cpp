// msmedcap caption (--run DIR | --model DIR | -c CFG...) (--images DIR | --list FILE | --dataset data|val_data)
//   --out OUT.jsonl|OUT.csv [--generate GEN.json] [--prompt TEXT] [--batch-size N]
//   [--attention-maps DIR] [--references-out REF.jsonl] [--zero-prefix]: captions with scores, one
//   record per image.
#include <iostream>

#include "commands.h"
#include "msmedcap/core/atomic_file.h"
#include "msmedcap/core/logging.h"
#include "msmedcap/core/progress.h"
#include "msmedcap/data/image_list.h"
#include "msmedcap/data/tokenizer.h"
#include "msmedcap/inference/batch_caption.h"
#include "msmedcap/inference/run_setup.h"

namespace msmedcap::cli {
namespace {

struct CaptionCliOptions {
  ConfigOptions config;
  std::string run_dir, images, list, dataset, out, format, attention_dir, references_out;
  std::optional<std::string> prompt;
  int64_t batch_size = 0, workers = -1, finding_ids_from = 0;
  bool zero_prefix = false;
};

std::string csv_field(const std::string& s) {
  if (s.find_first_of(",\"\r\n") == std::string::npos) return s;
  std::string q = "\"";
  for (char c : s) q += c == '"' ? std::string("\"\"") : std::string(1, c);
  return q + "\"";
}

std::vector<data::Sample> inputs_of(const CaptionCliOptions& o, const config::RunConfig& run) {
  const int given = !o.images.empty() + !o.list.empty() + !o.dataset.empty();
  MSMEDCAP_CHECK(given == 1, "caption: give exactly one of --images DIR, --list FILE, --dataset data|val_data");
  if (!o.images.empty()) return data::images_in_folder(o.images);
  if (!o.list.empty()) return data::read_image_list(o.list);
  return read_config_dataset(run, o.dataset);
}

void run(const CaptionCliOptions& o, const GlobalOptions& globals) {
  config::RunConfig cfg;
  const config::Json resolved = resolve_inference_config(cfg, o.config, o.run_dir, globals);
  if (o.config.dump_config) {
    std::cout << resolved.dump(2) << "\n";
    return;
  }
  std::string format = o.format;
  if (format.empty()) format = o.out.size() >= 4 && o.out.substr(o.out.size() - 4) == ".csv" ? "csv" : "jsonl";
  MSMEDCAP_CHECK(format == "jsonl" || format == "csv", "caption: --format must be jsonl or csv, got ", format);
  MSMEDCAP_CHECK(o.references_out.empty() || !o.dataset.empty(), "caption: --references-out needs --dataset");
  const auto samples = inputs_of(o, cfg);
  MSMEDCAP_CHECK(!samples.empty(), "caption: no images to caption");

  inference::RunCaptioning setup = inference::run_captioning(cfg);
  inference::CaptionOptions& options = setup.options;
  inference::BatchCaptionOptions& batch = setup.batch;
  if (o.prompt) options.prompt = *o.prompt;
  options.zero_prefix = o.zero_prefix;
  inference::Captioner captioner(inference::load_inference_model(cfg), setup.tokenizer, options);

  if (o.batch_size > 0) batch.batch_size = o.batch_size;
  if (o.workers >= 0) batch.workers = std::max<int64_t>(1, o.workers);
  batch.attention_dir = o.attention_dir;
  batch.finding_ids_from = o.finding_ids_from;

  core::AtomicFile out(o.out);
  if (format == "csv") out.write("id,image,caption,score,error\n");
  core::Progress progress("caption", static_cast<int64_t>(samples.size()),
                          core::ProgressOptions{nullptr, -1, 10.0, "img", {}});
  const auto stats = inference::caption_samples(
      captioner, samples, batch,
      [&](const inference::CaptionRecord& r) {
        if (format == "csv") {
          out.write(csv_field(r.id) + "," + csv_field(r.image) + "," + csv_field(r.caption) + "," +
                    (r.error.empty() ? fmt::format("{:.6f}", r.score) : std::string()) + "," + csv_field(r.error) +
                    "\n");
          return;
        }
        config::Json line{{"id", r.id}, {"image", r.image}};
        if (r.error.empty()) {
          line["caption"] = r.caption;
          line["score"] = r.score;
          if (!r.attention_on_finding.empty()) {
            line["attention_on_finding"] = r.attention_on_finding;
            line["finding_area"] = r.finding_area;
          }
        } else {
          line["error"] = r.error;
          core::log_warn("caption", "{}: {}", r.id, r.error);
        }
        out.write(line.dump() + "\n");
      },
      &progress);
  progress.finish();
  out.commit();
  if (!o.references_out.empty()) {
    std::string refs;
    for (const auto& s : samples) refs += config::Json{{"id", s.id}, {"captions", s.captions}}.dump() + "\n";
    core::write_file_atomic(o.references_out, refs);
  }
  const int64_t ok = stats.images - stats.failed;
  core::log_info("caption", "{} images ({} unreadable) in {:.1f} s: {:.2f} captions/s, beams {}, batch {} -> {}",
                 stats.images, stats.failed, stats.seconds,
                 stats.seconds > 0 ? static_cast<double>(ok) / stats.seconds : 0.0, options.generate.num_beams,
                 batch.batch_size, o.out);
}

}  // namespace

void register_caption(CLI::App& app, const GlobalOptions& globals) {
  auto o = std::make_shared<CaptionCliOptions>();
  auto* cmd = app.add_subcommand("caption", "caption images (a folder, a list file or a dataset) to JSONL or CSV");
  add_config_options(cmd, o->config);
  add_model_option(cmd, o->config);
  add_run_option(cmd, o->run_dir);
  cmd->add_option("--images", o->images, "caption every image of this folder")->type_name("DIR");
  cmd->add_option("--list", o->list, "caption the images of a list file (path or id<TAB>path per line)")
      ->type_name("FILE");
  cmd->add_option("--dataset", o->dataset, "caption the config's data or val_data sources")->type_name("data|val_data");
  cmd->add_option("--out", o->out, "records: id, image, caption, score (or error)")->required();
  cmd->add_option("--format", o->format, "jsonl or csv (default: from --out's extension)");
  cmd->add_option(
      "--generate", o->config.generate_file,
      "generation settings: a configs/generate/ preset or an HF generation_config.json (over -c, under --set)");
  cmd->add_option("--prompt", o->prompt, "text before the caption (default: train.prompt)");
  cmd->add_option("--batch-size", o->batch_size, "images per batch (default: loader.batch_size)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--workers", o->workers, "decoding threads (default: loader.workers)")->check(CLI::NonNegativeNumber);
  cmd->add_option("--attention-maps", o->attention_dir, "write <id>.clip.png and <id>.sam.png heat maps here")
      ->type_name("DIR");
  cmd->add_option("--references-out", o->references_out, "with --dataset: write the references as JSONL for evaluate");
  cmd->add_option("--attention-on-finding", o->finding_ids_from,
                  "for images with a structure mask (dataset \"mask\"), record each branch's share of attention on "
                  "the finding, mask ids >= this (10: the synthetic benchmark's lesions), and the finding's share of "
                  "the grid")
      ->check(CLI::Range(1, 255));
  cmd->add_flag("--zero-prefix", o->zero_prefix,
                "a baseline: zeros in place of the visual prefix, so the captions are what the decoder's language "
                "prior writes without the image");
  cmd->callback([o, &globals] { run(*o, globals); });
}

}  // namespace msmedcap::cli
