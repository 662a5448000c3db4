#pragma once
/// Strict loading of checkpoints into modules: every parameter and buffer is matched by name
/// (HuggingFace state-dict names), shapes are checked, and the report lists missing, unexpected
/// and shape-mismatched tensors. Loading fails unless the config allows what is absent or extra.

#include <torch/nn/module.h>

#include <optional>
#include <string>
#include <vector>

#include "msmedcap/config/run_config.h"
#include "msmedcap/io/tensor_store.h"

namespace msmedcap::io {

/// What a load found.
struct LoadReport {
  struct Mismatch {
    std::string name;
    std::vector<int64_t> expected;  // the module's shape
    std::vector<int64_t> found;     // the checkpoint's shape
  };
  std::vector<std::string> loaded;
  std::vector<std::string> missing;          // in the module, not in the checkpoint
  std::vector<std::string> allowed_missing;  // ... of which config allows these
  std::vector<std::string> unexpected;       // in the checkpoint, not in the module
  std::vector<std::string> ignored;          // ... of which config allows these
  std::vector<Mismatch> mismatched;

  /// True when nothing is missing, unexpected or mismatched beyond what the config allows.
  bool ok() const { return missing.empty() && unexpected.empty() && mismatched.empty(); }
  /// {"loaded": N, "missing": [...], "allowed_missing": [...], "unexpected": [...],
  ///  "ignored": [...], "mismatched": [{"name", "expected", "found"}]}.
  config::Json to_json() const;
  /// One line: counts and the first few names of each problem.
  std::string summary() const;
};

/// Options of one load: the policy, plus a prefix prepended to every checkpoint name
/// (e.g. "sam_model." for a standalone SAM file).
struct LoadOptions {
  config::LoadConfig policy;
  std::string prefix;
  /// When false, parameters absent from this file are not an error (the caller composes
  /// several files and checks completeness itself).
  bool require_complete = true;
  /// Where loaded tensors go: floating-point ones in `dtype` (unset: the parameter's own), all
  /// on `device` (unset: the parameter's own).
  std::optional<c10::ScalarType> dtype;
  std::optional<c10::Device> device;
  /// Tensors come from TensorSource::share (the file's pages where no conversion is needed)
  /// instead of read: for models that are only read, as inference's are (docs/LOADING.md).
  bool share_file_pages = false;
};

/// True when `pattern` is a prefix of `name`, a `*` standing for one dotted component
/// ("qformer.encoder.layer.*.intermediate." matches "qformer.encoder.layer.3.intermediate.dense.bias").
bool matches_prefix(const std::string& name, const std::string& pattern);

/// Compares a module with a checkpoint without copying anything.
LoadReport check_state_dict(torch::nn::Module& module, const TensorSource& source, const LoadOptions& options = {});

/// Replaces the data of every matching parameter and buffer of `module` by the checkpoint's
/// tensor, read once into the target dtype and device (LoadOptions), and returns the report;
/// throws msmedcap::Error with report.summary() unless report.ok(). Nothing is loaded when the
/// check fails. The module's own storage is released, never written: a module built under
/// models::DeferInit costs no memory beyond what is loaded.
LoadReport load_state_dict(torch::nn::Module& module, const TensorSource& source, const LoadOptions& options = {});

/// The module's parameters and buffers by name (CPU copies are not made; tensors are shared).
StateDict module_state_dict(const torch::nn::Module& module);

}  // namespace msmedcap::io
