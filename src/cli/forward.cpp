// msmedcap forward (--hf DIR | --model DIR | -c MODEL.json) --inputs IN.safetensors --output OUT.safetensors
// [--generate GEN.json --prompt-tokens K]: every output of the model on named inputs.
#include <iostream>
#include <optional>

#include "commands.h"
#include "msmedcap/config/config_io.h"
#include "msmedcap/core/device.h"
#include "msmedcap/core/logging.h"
#include "msmedcap/inference/forward.h"
#include "msmedcap/inference/run_setup.h"

namespace msmedcap::cli {

namespace {
struct ForwardOptions {
  ConfigOptions config;
  std::string hf_dir;
  std::string inputs;
  std::string output;
  std::string generate;
  int64_t prompt_tokens = 0;
};

void run(const ForwardOptions& o, const GlobalOptions& globals) {
  config::RunConfig run_config;
  const config::Json resolved = resolve_run_config(run_config, o.config, globals);
  if (o.config.dump_config) {
    std::cout << resolved.dump(2) << "\n";
    return;
  }
  MSMEDCAP_CHECK(!o.hf_dir.empty() || !o.config.files.empty() || !o.config.model_dir.empty(),
                 "forward: give --hf DIR, --model DIR or -c MODEL.json");
  MSMEDCAP_CHECK(o.hf_dir.empty() || o.config.model_dir.empty(), "forward: give --hf or --model, not both");
  inference::ModelSource source;
  source.hf_dir = o.hf_dir;
  source.run = &run_config;
  source.device = core::parse_device(run_config.runtime.device);
  source.dtype = inference::load_dtype(run_config.runtime);
  source.decoder_weights = inference::decode_weight_format(run_config.runtime);
  std::optional<inference::GenerateRequest> generate;
  if (!o.generate.empty()) {
    generate = inference::GenerateRequest{
        inference::GenerateOptions::from_config(config::read_generate_file(o.generate)), o.prompt_tokens};
  }
  const auto inputs = io::TensorStore::open(o.inputs);
  const auto outputs = inference::run_forward(source, inputs, generate);
  // The output records what produced it: the resolved config (and the HF directory, if any).
  io::Metadata metadata = {{"format", "pt"}, {"msmedcap_config", resolved.dump()}};
  if (!o.hf_dir.empty()) metadata.emplace_back("msmedcap_hf_dir", o.hf_dir);
  io::save_safetensors(o.output, outputs, metadata);
  core::log_info("forward", "wrote {} outputs to {}", outputs.size(), o.output);
}
}  // namespace

void register_forward(CLI::App& app, const GlobalOptions& globals) {
  auto options = std::make_shared<ForwardOptions>();
  auto* cmd = app.add_subcommand("forward", "run a model on named input tensors and save every output");
  add_config_options(cmd, options->config);
  add_model_option(cmd, options->config);
  cmd->add_option("--hf", options->hf_dir, "HF model directory (Blip2ForConditionalGeneration or SamModel)");
  cmd->add_option("--inputs", options->inputs, "safetensors with pixel_values, input_ids, ...")->required();
  cmd->add_option("--output", options->output, "safetensors to write")->required();
  cmd->add_option("--generate", options->generate,
                  "generation settings: a configs/generate/ preset or HF-style JSON (with an eos_token_id or none)");
  cmd->add_option("--prompt-tokens", options->prompt_tokens, "leading input_ids used as the prompt")
      ->check(CLI::NonNegativeNumber);
  cmd->callback([options, &globals] { run(*options, globals); });
}

}  // namespace msmedcap::cli
