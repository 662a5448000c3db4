#pragma once
/// A self-contained model folder (`msmedcap export`): everything inference and fine-tuning need,
/// so a model can leave the machine that trained it (docs/LOADING.md, "Model folders").
///
///   MODEL_DIR/config.json                 {"msmedcap_model_folder": 1, "model", "tokenizers",
///                                          "data": {"transform"}, "train": {"prompt", "eos_text"}}
///   MODEL_DIR/generation_config.json      HF-style generation settings (when given)
///   MODEL_DIR/model.safetensors           every parameter, frozen parts included; or
///   MODEL_DIR/model-0000k-of-0000n.safetensors + model.safetensors.index.json
///   MODEL_DIR/tokenizers/{qformer,decoder}/...
///   MODEL_DIR/README.md                   provenance
///
/// With format "hf" (a CLIP-only BLIP-2 model) the folder is HF's Blip2ForConditionalGeneration
/// layout instead: HF's config.json, the same tensor names, the decoder tokenizer's files.

#include <c10/core/ScalarType.h>

#include <cstdint>
#include <string>
#include <vector>

#include "msmedcap/config/run_config.h"
#include "msmedcap/models/msmedcap.h"

namespace msmedcap::inference {

/// The version written into, and required from, a model folder's config.json.
inline constexpr int kModelFolderVersion = 1;

struct ExportOptions {
  std::string out;                           ///< MODEL_DIR; must not exist yet
  std::string format = "msmedcap";           ///< msmedcap | hf
  uint64_t max_shard_bytes = 5'000'000'000;  ///< HF's max_shard_size "5GB"
  std::string generate_file;                 ///< generation settings (configs/generate/ JSON) to include
  std::vector<std::string> provenance;       ///< README lines: where the weights came from
};

/// HF's Blip2ForConditionalGeneration config.json for a CLIP-only model (msmedcap reads it back
/// to the same ModelConfig); throws when the model has a SAM branch, a CLIP-type tower or the
/// stage-1 text path, which that architecture lacks.
config::Json hf_blip2_config(const config::ModelConfig& cfg, c10::ScalarType dtype);

/// Writes the folder: into a temporary sibling first, renamed to `options.out` at the end, so a
/// failed export leaves nothing behind.
void export_model(models::MsMedCapModelImpl& model, const config::RunConfig& cfg, const ExportOptions& options);

/// The config layer `--model DIR` puts under the -c files: the folder's config.json with its
/// paths made absolute and `weights` naming the folder. Errors name the folder.
config::Json model_folder_layer(const std::string& dir);

/// DIR/generation_config.json when the folder has one, else "".
std::string model_folder_generation(const std::string& dir);

}  // namespace msmedcap::inference
