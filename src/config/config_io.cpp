#include "msmedcap/config/config_io.h"

#include <sys/stat.h>

#include <algorithm>
#include <fstream>

#include "msmedcap/config/json_depth.h"
#include "msmedcap/core/atomic_file.h"
#include "msmedcap/core/error_text.h"

namespace msmedcap::config {

std::string nearest_key(const std::string& key, const std::vector<std::string>& candidates) {
  std::string best;
  size_t best_distance = std::string::npos;
  for (const auto& candidate : candidates) {
    // Levenshtein distance, two rows.
    std::vector<size_t> prev(candidate.size() + 1), cur(candidate.size() + 1);
    for (size_t j = 0; j <= candidate.size(); ++j) prev[j] = j;
    for (size_t i = 1; i <= key.size(); ++i) {
      cur[0] = i;
      for (size_t j = 1; j <= candidate.size(); ++j) {
        const size_t substitution = prev[j - 1] + (key[i - 1] == candidate[j - 1] ? 0 : 1);
        cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, substitution});
      }
      std::swap(prev, cur);
    }
    if (prev[candidate.size()] < best_distance) {
      best_distance = prev[candidate.size()];
      best = candidate;
    }
  }
  // Only suggest keys that are plausibly a typo: at most a third of the longer name differs.
  const size_t limit = std::max<size_t>(2, std::max(key.size(), best.size()) / 3);
  return best_distance <= limit ? best : std::string();
}

std::string describe_json(const Json& j) {
  std::string text = j.dump(-1, ' ', false, Json::error_handler_t::replace);
  if (text.size() > 60) text = text.substr(0, 57) + "...";
  switch (j.type()) {
    case Json::value_t::string:
      return "string " + text;
    case Json::value_t::boolean:
      return "boolean " + text;
    case Json::value_t::number_float:
      return "number " + text;
    case Json::value_t::number_integer:
    case Json::value_t::number_unsigned:
      return "integer " + text;
    case Json::value_t::array:
      return "array " + text;
    case Json::value_t::object:
      return "object " + text;
    case Json::value_t::null:
      return "null";
    default:
      return text;
  }
}

void check_json_depth(const char* begin, const char* end, const std::string& origin) {
  int depth = 0;
  bool in_string = false, escaped = false;
  size_t line = 1;
  for (const char* c = begin; c != end; ++c) {
    if (*c == '\n') ++line;
    if (in_string) {
      if (escaped)
        escaped = false;
      else if (*c == '\\')
        escaped = true;
      else if (*c == '"')
        in_string = false;
    } else if (*c == '"') {
      in_string = true;
    } else if (*c == '[' || *c == '{') {
      MSMEDCAP_CHECK(++depth <= kMaxJsonDepth, origin, ":", line, ": JSON nested deeper than ", kMaxJsonDepth,
                     " levels");
    } else if (*c == ']' || *c == '}') {
      --depth;
    }
  }
}

void for_each_jsonl_object(const std::string& path,
                           const std::function<void(const Json& object, const std::string& where)>& row) {
  std::ifstream in(path);
  MSMEDCAP_CHECK(in.good(), path, ": cannot open");
  std::string line;
  for (int64_t n = 1; std::getline(in, line); ++n) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    const std::string where = path + ":" + std::to_string(n);
    const auto j = Json::parse(line, nullptr, false);
    MSMEDCAP_CHECK(!j.is_discarded() && j.is_object(), where, ": not a JSON object");
    row(j, where);
  }
}

Json read_json_file(const std::string& path) {
  struct stat st {};
  MSMEDCAP_CHECK(stat(path.c_str(), &st) == 0, path, ": no such file");
  MSMEDCAP_CHECK(S_ISREG(st.st_mode), path, ": not a regular file");
  const std::string text = core::read_file(path);
  check_json_depth(text, path);
  try {
    return Json::parse(text);
  } catch (const Json::parse_error& e) {
    // Turn the byte offset into line:column for the user.
    const size_t offset = std::min<size_t>(e.byte == 0 ? 0 : e.byte - 1, text.size());
    const size_t line = 1 + static_cast<size_t>(std::count(text.begin(), text.begin() + offset, '\n'));
    const size_t line_start = text.rfind('\n', offset == 0 ? 0 : offset - 1);
    const size_t column = offset - (line_start == std::string::npos ? 0 : line_start + 1) + 1;
    std::string what = e.what();
    const auto colon = what.rfind(": ");
    if (colon != std::string::npos) what = what.substr(colon + 2);
    MSMEDCAP_FAIL(path, ":", line, ":", column, ": invalid JSON: ", what);
  } catch (const Json::exception& e) {  // a number out of range (1e999)
    std::string what = e.what();
    const auto bracket = what.find("] ");
    MSMEDCAP_FAIL(path, ": invalid JSON: ", bracket == std::string::npos ? what : what.substr(bracket + 2));
  }
}

namespace {
/// Whether `json` holds the dotted key path `parts` (array indices as "name[3]"), or a value
/// that replaces a section on the way to it.
bool sets_path(const Json& json, const std::vector<std::string>& parts) {
  const Json* node = &json;
  for (const auto& part : parts) {
    std::string name = part;
    std::vector<size_t> indices;
    while (!name.empty() && name.back() == ']') {
      const auto open = name.rfind('[');
      if (open == std::string::npos) return false;
      indices.insert(indices.begin(), std::stoul(name.substr(open + 1, name.size() - open - 2)));
      name = name.substr(0, open);
    }
    if (!node->is_object() || !node->contains(name)) return false;
    node = &(*node)[name];
    for (const size_t i : indices) {
      if (!node->is_array()) return true;  // the whole list is set here
      if (i >= node->size()) return false;
      node = &(*node)[i];
    }
    if (!node->is_object()) return true;  // set here, or replaced by a non-object
  }
  return true;
}
}  // namespace

std::string with_origin(const std::string& message, const ConfigSources& sources) {
  const auto colon = message.find(": ");
  if (colon == std::string::npos || colon == 0) return message;
  const std::string key = message.substr(0, colon);
  if (key.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.[]") != std::string::npos)
    return message;
  std::vector<std::string> parts;
  for (size_t start = 0;;) {
    const auto dot = key.find('.', start);
    parts.push_back(key.substr(start, dot == std::string::npos ? dot : dot - start));
    if (dot == std::string::npos) break;
    start = dot + 1;
  }
  try {
    for (auto it = sources.overrides.rbegin(); it != sources.overrides.rend(); ++it) {
      const std::string set = it->substr(0, it->find('='));
      std::string bare = key;  // "--set data.sources=[...]" sets data.sources[0].format too
      for (size_t b; (b = bare.find('[')) != std::string::npos;) bare.erase(b, bare.find(']', b) - b + 1);
      if (bare == set || bare.rfind(set + ".", 0) == 0) return "--set " + core::one_line(*it, 80) + ": " + message;
    }
    for (auto it = sources.files.rbegin(); it != sources.files.rend(); ++it) {
      if (sets_path(read_json_file(*it), parts)) return *it + ": " + message;
    }
    for (auto it = sources.layers.rbegin(); it != sources.layers.rend(); ++it) {
      if (sets_path(it->json, parts)) return it->origin + ": " + message;
    }
  } catch (const std::exception&) {  // a malformed index: the message as it was
  }
  return message;
}

void merge_patch(Json& target, const Json& patch) {
  if (!patch.is_object()) {
    target = patch;
    return;
  }
  if (!target.is_object()) target = Json::object();
  for (const auto& item : patch.items()) {
    if (item.value().is_null()) {
      target.erase(item.key());
    } else {
      merge_patch(target[item.key()], item.value());
    }
  }
}

void apply_override(Json& config, const std::string& assignment) {
  const auto eq = assignment.find('=');
  MSMEDCAP_CHECK(eq != std::string::npos && eq > 0, "--set ", assignment,
                 ": expected KEY=VALUE, e.g. --set runtime.threads=4");
  try {
    (void)Json(assignment).dump();  // JSON strings are UTF-8: configs are saved with each run
  } catch (const Json::type_error&) {
    MSMEDCAP_FAIL("--set ", Json(assignment).dump(-1, ' ', true, Json::error_handler_t::replace), ": not valid UTF-8");
  }
  const std::string key = assignment.substr(0, eq);
  const std::string text = assignment.substr(eq + 1);
  Json* node = &config;
  std::string path;
  size_t start = 0;
  while (true) {
    const size_t dot = key.find('.', start);
    const std::string part = key.substr(start, dot == std::string::npos ? dot : dot - start);
    MSMEDCAP_CHECK(!part.empty(), "--set ", assignment, ": empty key component in '", key, "'");
    if (node->is_null()) *node = Json::object();  // a new section: the typed read names it
    MSMEDCAP_CHECK(node->is_object(), "--set ", assignment, ": '", path, "' is not a section, so it has no key '", part,
                   "'");
    path = path.empty() ? part : path + "." + part;
    node = &(*node)[part];
    if (dot == std::string::npos) break;
    start = dot + 1;
  }
  // Strings stay strings (so --set model.name=123 keeps "123"); everything else is JSON.
  if (node->is_string()) {
    *node = text;
    return;
  }
  try {
    *node = Json::parse(text);
  } catch (const Json::exception&) {  // not JSON, or a number out of range: the text itself
    *node = text;
  }
}

void write_config(const Json& config, const std::string& dir) {
  core::write_file_atomic(dir + "/config.json", config.dump(2) + "\n");
}

}  // namespace msmedcap::config
