#pragma once
/// Layered configuration: defaults <- `-c a.json` <- `-c b.json` (JSON merge patch, left to
/// right) <- `--set a.b=v` overrides, parsed into a typed struct and validated. Errors name the
/// file or override, the full JSON path and, for unknown keys, the nearest valid key.

#include <functional>
#include <string>
#include <vector>

#include "msmedcap/config/fields.h"

namespace msmedcap::config {

/// Reads a JSON file. Errors name the file and the parse position.
Json read_json_file(const std::string& path);

/// Calls `row(object, where)` for each non-blank line of a JSONL file, `where` "path:line".
/// Errors name the file (cannot open) or the line (not a JSON object).
void for_each_jsonl_object(const std::string& path,
                           const std::function<void(const Json& object, const std::string& where)>& row);

/// RFC 7386 JSON merge patch: objects merge recursively, null deletes, anything else replaces.
void merge_patch(Json& target, const Json& patch);

/// Applies one `a.b.c=value` assignment to `config`. The value is parsed as JSON when it is
/// valid JSON (numbers, true/false, arrays, objects, quoted strings) and taken as a plain string
/// otherwise, or when the current value at that path is a string.
void apply_override(Json& config, const std::string& assignment);

/// A config layer that is not a file as written (a model folder's config with its paths made
/// absolute); `origin` names it in errors.
struct ConfigLayer {
  std::string origin;
  Json json;
};

/// Where a config comes from: layers, then files merged left to right, then overrides in order.
struct ConfigSources {
  std::vector<std::string> files;
  std::vector<std::string> overrides;
  std::vector<ConfigLayer> layers;
};

/// `message` (a validation error starting "a.b.c: ...") prefixed by the source that last set
/// key a.b.c or a section above it: the --set assignment, the -c file or the layer; unchanged
/// when none did (the default is at fault).
std::string with_origin(const std::string& message, const ConfigSources& sources);

/// Merges `sources` over the defaults held by `config`, reads the result back into `config`
/// (checking every layer on its own so errors name their file or override; range errors name the
/// source that set the value) and returns the resolved JSON. T must have `visit` and `validate() const`.
template <class T>
Json resolve_config(T& config, const ConfigSources& sources) {
  Json merged = to_json(config);
  const T defaults = config;
  for (const auto& layer : sources.layers) {
    MSMEDCAP_CHECK(layer.json.is_object(), layer.origin, ": a config layer must be a JSON object");
    merge_patch(merged, layer.json);
    T check = defaults;
    from_json(merged, check, "", layer.origin);
  }
  for (const auto& file : sources.files) {
    const Json patch = read_json_file(file);
    MSMEDCAP_CHECK(patch.is_object(), file, ": a config file must hold a JSON object, got ", describe_json(patch));
    merge_patch(merged, patch);
    T check = defaults;
    from_json(merged, check, "", file);
  }
  for (const auto& assignment : sources.overrides) {
    apply_override(merged, assignment);
    T check = defaults;
    from_json(merged, check, "", "--set " + assignment);
  }
  from_json(merged, config, "", "");
  try {
    config.validate();
  } catch (const Error& e) {
    throw Error(with_origin(e.what(), sources));
  }
  return to_json(config);
}

/// Writes `config` as indented JSON to DIR/config.json atomically (temp file, fsync, rename).
void write_config(const Json& config, const std::string& dir);

}  // namespace msmedcap::config
