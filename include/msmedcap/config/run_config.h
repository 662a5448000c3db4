#pragma once
/// The sections every msmedcap command shares: runtime (threads, device, logging, seed) and
/// checkpoint loading policy. Later sections (model, data, train, generate) join RunConfig.

#include <cstdint>
#include <string>
#include <vector>

#include "msmedcap/config/data_config.h"
#include "msmedcap/config/fields.h"
#include "msmedcap/config/generate_config.h"
#include "msmedcap/config/model_config.h"
#include "msmedcap/config/train_config.h"

namespace msmedcap::config {

/// Process-wide runtime settings.
struct RuntimeConfig {
  /// Intra-op CPU threads; 0 = all cores (Debian's LibTorch would otherwise use one).
  int64_t threads = 0;
  /// Compute device: "cpu", "cuda" or "cuda:N".
  std::string device = "cpu";
  /// Log level on stderr: trace, debug, info, warn, error, off.
  std::string log_level = "info";
  /// Seed of every random generator the run uses.
  int64_t seed = 42;
  /// Weights and activations of inference commands (forward, caption, retrieve,
  /// extract-features): fp32, bf16, fp16 (CUDA only), int8 or w8a8 (CPU decoding only: float32
  /// model, the decoder's weights quantised per output channel; w8a8 also quantises each of its
  /// products' inputs per row as it runs). Norm statistics,
  /// softmax and losses are computed in float32 whatever this says. On the CPU the decoder's
  /// small-row products read packed weights in this format (models/packed_linear.h).
  std::string dtype = "fp32";

  template <class V>
  void visit(V& v) {
    v("threads", threads, "intra-op CPU threads; 0 = all cores");
    v("device", device, "compute device: cpu, cuda or cuda:N");
    v("dtype", dtype,
      "inference weights and activations: fp32, bf16, fp16 (CUDA only) or int8 (CPU decoding: int8 decoder weights)");
    v("log_level", log_level, "log level on stderr: trace, debug, info, warn, error, off");
    v("seed", seed, "seed of every random generator the run uses");
  }
  void validate() const;
};

/// Strict-loading policy: which parameters a checkpoint may lack or carry in excess.
struct LoadConfig {
  /// Name prefixes of module parameters that may be absent from the checkpoint (they keep
  /// their initial values), e.g. "language_model." when the LLM comes from another file.
  /// A `*` stands for one dotted component ("qformer.encoder.layer.*.crossattention.").
  std::vector<std::string> allow_missing;
  /// Name prefixes of checkpoint tensors the module does not have and that may be ignored.
  std::vector<std::string> allow_unexpected;

  template <class V>
  void visit(V& v) {
    v("allow_missing", allow_missing, "parameter-name prefixes that may be absent from a checkpoint");
    v("allow_unexpected", allow_unexpected, "checkpoint-tensor prefixes the model does not use and may ignore");
  }
  void validate() const;
};

/// One weights file (or sharded checkpoint / HF directory) loaded into the model.
struct WeightsSource {
  /// File, *.index.json or directory; relative paths are taken from the working directory.
  std::string path;
  /// Prepended to every name in the file, e.g. "sam_model." for a standalone HF SAM file.
  std::string prefix;
  /// Naming convention of the file: hf, hf-lm, lavis, sam, bert or samblip (io/weight_map.h).
  std::string format = "hf";

  template <class V>
  void visit(V& v) {
    v("path", path, "safetensors file, sharded index or model directory");
    v("prefix", prefix, "prefix added to the file's tensor names (e.g. sam_model.)");
    v("format", format,
      "tensor naming: hf, hf-lm (un-prefixed LM), lavis (.pth converted), sam (original SAM), bert (a fresh "
      "Q-Former from bert-base-uncased), samblip (MSMedCap's prototype)");
  }
};

/// The model's tokenizers (a file or an HF folder each; data/tokenizer.h).
struct TokenizersConfig {
  /// WordPiece vocabulary of the Q-Formers' text path (bert-base-uncased's vocab.txt); [DEC] is
  /// appended after it.
  std::string qformer;
  /// The decoder LLM's tokenizer (OPT/GPT-2 vocab.json + merges.txt, LLaMA tokenizer.model).
  std::string decoder;

  template <class V>
  void visit(V& v) {
    v("qformer", qformer, "Q-Former WordPiece vocab.txt or folder (stage 1)");
    v("decoder", decoder, "decoder tokenizer file or folder (stage 2, captioning)");
  }
};

/// The root of a resolved msmedcap config.
struct RunConfig {
  RuntimeConfig runtime;
  LoadConfig load;
  ModelConfig model;
  /// Weight files loaded in order (later files override earlier ones' tensors).
  std::vector<WeightsSource> weights;
  /// The dataset (mixture, transforms, feature cache) and its loader.
  DatasetConfig data;
  LoaderConfig loader;
  TokenizersConfig tokenizers;
  TrainConfig train;
  /// Validation data, every sample once through data.transform without augmentation (its own
  /// transform section is not used); no sources = no validation.
  DatasetConfig val_data;
  /// How captions are generated (caption, train.val_caption_images, export).
  GenerateConfig generate;

  template <class V>
  void visit(V& v) {
    v("runtime", runtime, "process-wide runtime settings");
    v("load", load, "strict-loading policy for checkpoints");
    v("model", model, "model architecture");
    v("weights", weights, "weight files loaded into the model, in order");
    v("data", data, "dataset sources, mixture weights, transforms, feature cache");
    v("loader", loader, "threaded data loader");
    v("tokenizers", tokenizers, "the model's tokenizers");
    v("train", train, "training: stage, optimiser, schedule, checkpoints");
    v("val_data", val_data, "validation dataset for training; no sources = none");
    v("generate", generate, "caption generation (HF's names; presets in configs/generate/)");
  }
  void validate() const;
};

}  // namespace msmedcap::config
