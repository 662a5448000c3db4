#include "msmedcap/io/state_dict.h"

#include <ATen/ATen.h>
#include <torch/csrc/autograd/grad_mode.h>

#include <sstream>

#include "msmedcap/core/check.h"

namespace msmedcap::io {

// True when `pattern` is a prefix of `name`; a `*` in the pattern stands for one dotted name
// component ("qformer.encoder.layer.*.intermediate.").
bool matches_prefix(const std::string& name, const std::string& pattern) {
  size_t n = 0;
  for (size_t p = 0; p < pattern.size(); ++p) {
    if (pattern[p] == '*') {
      if (n >= name.size() || name[n] == '.') return false;
      while (n < name.size() && name[n] != '.') ++n;
      continue;
    }
    if (n >= name.size() || name[n] != pattern[p]) return false;
    ++n;
  }
  return true;
}

namespace {

bool has_prefix(const std::string& name, const std::vector<std::string>& prefixes) {
  for (const auto& p : prefixes) {
    if (matches_prefix(name, p)) return true;
  }
  return false;
}

std::string shape_text(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

std::string first_names(const std::vector<std::string>& names, size_t limit = 3) {
  std::string s;
  for (size_t i = 0; i < names.size() && i < limit; ++i) s += (i ? ", " : "") + names[i];
  if (names.size() > limit) s += ", ...";
  return s;
}

}  // namespace

StateDict module_state_dict(const torch::nn::Module& module) {
  StateDict out;
  for (const auto& item : module.named_parameters(/*recurse=*/true)) {
    out.emplace(item.key(), item.value());
  }
  for (const auto& item : module.named_buffers(/*recurse=*/true)) {
    out.emplace(item.key(), item.value());
  }
  return out;
}

LoadReport check_state_dict(torch::nn::Module& module, const TensorSource& store, const LoadOptions& options) {
  LoadReport report;
  const StateDict own = module_state_dict(module);
  // Checkpoint names map to module names by prepending the prefix.
  std::map<std::string, std::string> by_module_name;
  for (const auto& stored : store.tensor_names()) by_module_name.emplace(options.prefix + stored, stored);

  for (const auto& [name, tensor] : own) {
    const auto it = by_module_name.find(name);
    if (it == by_module_name.end()) {
      (has_prefix(name, options.policy.allow_missing) ? report.allowed_missing : report.missing).push_back(name);
      continue;
    }
    const auto shape = store.shape_of(it->second);
    if (shape != tensor.sizes().vec()) {
      report.mismatched.push_back({name, tensor.sizes().vec(), shape});
    } else {
      report.loaded.push_back(name);
    }
  }
  for (const auto& [module_name, stored] : by_module_name) {
    if (own.count(module_name)) continue;
    (has_prefix(module_name, options.policy.allow_unexpected) ? report.ignored : report.unexpected)
        .push_back(module_name);
  }
  return report;
}

LoadReport load_state_dict(torch::nn::Module& module, const TensorSource& store, const LoadOptions& options) {
  LoadReport report = check_state_dict(module, store, options);
  if (!options.require_complete) {
    report.allowed_missing.insert(report.allowed_missing.end(), report.missing.begin(), report.missing.end());
    report.missing.clear();
  }
  MSMEDCAP_CHECK(report.ok(), store.describe(), ": ", report.summary());
  const StateDict own = module_state_dict(module);
  torch::NoGradGuard no_grad;
  for (const auto& name : report.loaded) {
    at::Tensor target = own.at(name);
    const auto dtype = options.dtype && target.is_floating_point() ? *options.dtype : target.scalar_type();
    const std::string stored = name.substr(options.prefix.size());
    const auto device = options.device.value_or(target.device());
    target.set_data(options.share_file_pages ? store.share(stored, dtype, device) : store.read(stored, dtype, device));
  }
  return report;
}

config::Json LoadReport::to_json() const {
  config::Json j;
  j["loaded"] = loaded.size();
  j["missing"] = missing;
  j["allowed_missing"] = allowed_missing;
  j["unexpected"] = unexpected;
  j["ignored"] = ignored;
  j["mismatched"] = config::Json::array();
  for (const auto& m : mismatched) {
    j["mismatched"].push_back({{"name", m.name}, {"expected", m.expected}, {"found", m.found}});
  }
  return j;
}

std::string LoadReport::summary() const {
  std::ostringstream out;
  out << loaded.size() << " loaded";
  if (!missing.empty()) out << "; " << missing.size() << " missing (" << first_names(missing) << ")";
  if (!unexpected.empty()) {
    out << "; " << unexpected.size() << " unexpected (" << first_names(unexpected) << ")";
  }
  if (!mismatched.empty()) {
    out << "; " << mismatched.size() << " shape-mismatched (";
    for (size_t i = 0; i < mismatched.size() && i < 3; ++i) {
      out << (i ? ", " : "") << mismatched[i].name << ": model " << shape_text(mismatched[i].expected) << " vs file "
          << shape_text(mismatched[i].found);
    }
    out << (mismatched.size() > 3 ? ", ...)" : ")");
  }
  if (!allowed_missing.empty()) out << "; " << allowed_missing.size() << " missing as allowed";
  if (!ignored.empty()) out << "; " << ignored.size() << " unexpected ignored as allowed";
  if (!missing.empty() || !unexpected.empty()) {
    out << " (load.allow_missing / load.allow_unexpected accept name prefixes)";
  }
  return out.str();
}

}  // namespace msmedcap::io
