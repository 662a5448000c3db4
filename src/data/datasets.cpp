#include "msmedcap/data/datasets.h"

#include <sys/stat.h>

#include <nlohmann/json.hpp>

#include <functional>
#include <regex>
#include <sstream>

#include "msmedcap/config/config_io.h"
#include "msmedcap/config/json_depth.h"
#include "msmedcap/core/atomic_file.h"
#include "msmedcap/core/check.h"
#include "msmedcap/core/logging.h"

namespace msmedcap::data {

namespace {

using Json = nlohmann::json;

bool exists(const std::string& path) {
  struct stat st {};
  return stat(path.c_str(), &st) == 0;
}

std::string trim(const std::string& s) {
  const auto b = s.find_first_not_of(" \t\r\n");
  if (b == std::string::npos) return "";
  const auto e = s.find_last_not_of(" \t\r\n");
  return s.substr(b, e - b + 1);
}

std::string joined(const std::string& root, const std::string& file) {
  if (file.empty() || file[0] == '/') return file;
  return root + "/" + file;
}

/// Collects rows, enforcing the malformed-row policy and the report's problem list.
class Collector {
 public:
  Collector(const config::DatasetSourceConfig& source, ReadReport* report)
      : source_(source), report_(report != nullptr ? report : &own_) {}

  /// A row that cannot be parsed: an error, or skipped and counted.
  void malformed(const std::string& where, const std::string& why) {
    MSMEDCAP_CHECK(source_.skip_malformed, where, ": ", why, " (set skip_malformed to skip such rows)");
    skip(where, why);
  }
  /// A row that is well-formed but unusable (no caption, no image): always skipped and counted.
  void skip(const std::string& where, const std::string& why) {
    ++report_->skipped;
    if (report_->skipped <= static_cast<int64_t>(ReadReport::kMaxProblems))
      core::log_warn("data", "skipped {}: {}", where, why);
    if (report_->problems.size() < ReadReport::kMaxProblems) report_->problems.push_back(where + ": " + why);
  }
  void add(Sample sample, const std::string& where) {
    std::vector<std::string> captions;
    for (auto& c : sample.captions) {
      c = trim(c);
      if (!c.empty()) captions.push_back(c);
    }
    if (captions.empty()) return skip(where, "empty caption");
    if (sample.image.empty()) return skip(where, "no image");
    sample.captions = std::move(captions);
    sample.image = resolve_image_path(image_root_, sample.image, source_.allow_outside_root, where);
    const auto mask = sample.attributes.find("mask");
    if (mask != sample.attributes.end()) {
      sample.mask = resolve_image_path(image_root_, mask->second, source_.allow_outside_root, where);
      sample.attributes.erase(mask);
    }
    ++report_->read;
    samples_.push_back(std::move(sample));
  }
  void set_image_root(std::string root) { image_root_ = std::move(root); }
  /// The samples; the skipped rows' count is logged (each of the first kMaxProblems was as it
  /// happened).
  std::vector<Sample> take(const std::string& origin) {
    if (report_->skipped > 0)
      core::log_warn("data", "{}: {} rows read, {} skipped", origin, report_->read, report_->skipped);
    return std::move(samples_);
  }

 private:
  const config::DatasetSourceConfig& source_;
  ReadReport own_;  // counts kept when the caller asks for no report
  ReadReport* report_;
  std::string image_root_;
  std::vector<Sample> samples_;
};

std::vector<std::string> read_lines(const std::string& path) {
  MSMEDCAP_CHECK(exists(path), path, ": no such file");
  std::istringstream in(core::read_file(path));
  std::vector<std::string> lines;
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    lines.push_back(line);
  }
  return lines;
}

/// String form of a JSON scalar attribute; empty for objects/arrays/null.
std::string scalar_text(const Json& v) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_number() || v.is_boolean()) return v.dump();
  return "";
}

/// A generic {image, caption | captions, id?, ...} object.
void add_generic(Collector& out, const Json& row, const std::string& where, const std::string& fallback_id) {
  if (!row.is_object()) return out.malformed(where, "expected a JSON object");
  Sample s;
  s.id = row.contains("id") ? scalar_text(row["id"]) : fallback_id;
  if (row.contains("image")) {
    if (!row["image"].is_string()) return out.malformed(where, "\"image\" must be a string");
    s.image = row["image"].get<std::string>();
  }
  for (const char* key : {"caption", "captions"}) {
    if (!row.contains(key)) continue;
    const auto& c = row[key];
    if (c.is_string()) {
      s.captions.push_back(c.get<std::string>());
    } else if (c.is_array()) {
      for (const auto& item : c) {
        if (!item.is_string()) return out.malformed(where, std::string("\"") + key + "\" must hold strings");
        s.captions.push_back(item.get<std::string>());
      }
    } else {
      return out.malformed(where, std::string("\"") + key + "\" must be a string or a list of strings");
    }
  }
  for (const auto& item : row.items()) {
    if (item.key() == "image" || item.key() == "caption" || item.key() == "captions" || item.key() == "id") continue;
    const auto& v = item.value();
    if (v.is_string() || v.is_number() || v.is_boolean()) s.attributes[item.key()] = scalar_text(v);
  }
  out.add(std::move(s), where);
}

Json parse_json_text(const std::string& text, const std::string& where) {
  config::check_json_depth(text, where);
  try {
    return Json::parse(text);
  } catch (const Json::exception& e) {  // parse errors and out-of-range numbers (1e999)
    std::string what = e.what();
    const auto colon = what.rfind(": ");
    MSMEDCAP_FAIL(where, ": invalid JSON: ", colon == std::string::npos ? what : what.substr(colon + 2));
  }
}

void read_jsonl(Collector& out, const std::string& file,
                const std::function<void(Collector&, const Json&, const std::string&, size_t)>& row_fn) {
  const auto lines = read_lines(file);
  for (size_t i = 0; i < lines.size(); ++i) {
    if (trim(lines[i]).empty()) continue;
    const std::string where = file + ":" + std::to_string(i + 1);
    Json row;
    try {
      config::check_json_depth(lines[i], where);
      row = Json::parse(lines[i]);
    } catch (const Error&) {  // nested past the budget
      out.malformed(where, "JSON nested deeper than " + std::to_string(config::kMaxJsonDepth) + " levels");
      continue;
    } catch (const Json::exception&) {  // parse errors and out-of-range numbers (1e999)
      out.malformed(where, "invalid JSON");
      continue;
    }
    row_fn(out, row, where, i + 1);
  }
}

std::string strip_figure_label(const std::string& caption) {
  // MedICaT captions start with their label: "Figure 1.", "Fig 3.", "Fig. 2:".
  static const std::regex kLabel("^\\s*(figure|fig\\.?)\\s*\\d+[a-z]?\\s*[.:]?\\s*", std::regex::icase);
  return std::regex_replace(caption, kLabel, "", std::regex_constants::format_first_only);
}

}  // namespace

std::string resolve_image_path(const std::string& root, const std::string& relative, bool allow_outside,
                               const std::string& where) {
  if (allow_outside) return joined(root, relative);
  MSMEDCAP_CHECK(relative.empty() || relative[0] != '/', where, ": image path '", relative,
                 "' is absolute; paths must stay inside the dataset root (allow_outside_root)");
  int depth = 0;
  std::istringstream parts(relative);
  std::string part;
  while (std::getline(parts, part, '/')) {
    if (part.empty() || part == ".") continue;
    depth += part == ".." ? -1 : 1;
    MSMEDCAP_CHECK(depth >= 0, where, ": image path '", relative, "' leaves the dataset root (allow_outside_root)");
  }
  return joined(root, relative);
}

std::string medicat_split(const std::string& pdf_hash) {
  uint64_t h = 1469598103934665603ULL;  // FNV-1a: stable across platforms and runs
  for (const unsigned char c : pdf_hash) {
    h ^= c;
    h *= 1099511628211ULL;
  }
  const uint64_t bucket = h % 100;
  return bucket < 80 ? "train" : bucket < 90 ? "val" : "test";
}

std::vector<std::vector<std::string>> parse_csv(const std::string& text, const std::string& name,
                                                std::vector<size_t>* lines) {
  std::vector<std::vector<std::string>> rows;
  std::vector<std::string> row;
  std::string field;
  bool quoted = false, field_started = false;
  size_t line = 1, quote_line = 0, row_line = 1;
  const auto end_row = [&] {
    rows.push_back(std::move(row));
    row.clear();
    if (lines != nullptr) lines->push_back(row_line);
  };
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (quoted) {
      if (c == '"') {
        if (i + 1 < text.size() && text[i + 1] == '"') {
          field += '"';
          ++i;
        } else {
          quoted = false;
          const char next = i + 1 < text.size() ? text[i + 1] : ',';
          MSMEDCAP_CHECK(
              next == ',' || next == '\n' || next == '\r', name, ":", quote_line,
              ": the quoted field opened here closes on line ", line,
              " with more text after its closing quote (a stray quote? quotes inside a quoted field are doubled)");
        }
      } else {
        if (c == '\n') ++line;
        field += c;
      }
      continue;
    }
    if (c == '"' && !field_started) {
      quoted = true;
      field_started = true;
      quote_line = line;
    } else if (c == ',') {
      row.push_back(std::move(field));
      field.clear();
      field_started = false;
    } else if (c == '\n' || c == '\r') {
      if (c == '\r' && i + 1 < text.size() && text[i + 1] == '\n') ++i;
      row.push_back(std::move(field));
      field.clear();
      field_started = false;
      end_row();
      row_line = ++line;
    } else {
      field += c;
      field_started = true;
    }
  }
  MSMEDCAP_CHECK(!quoted, name, ":", quote_line, ": unterminated quoted field");
  if (field_started || !row.empty()) {
    row.push_back(std::move(field));
    end_row();
  }
  return rows;
}

std::vector<Sample> read_dataset(const config::DatasetSourceConfig& src, ReadReport* report) {
  src.validate("dataset");
  Collector out(src, report);
  const std::string& root = src.root;
  out.set_image_root(root);
  const std::string annotations = joined(root, src.annotations);

  if (src.format == "jsonl") {
    read_jsonl(out, annotations, [](Collector& c, const Json& row, const std::string& where, size_t line) {
      add_generic(c, row, where, std::to_string(line));
    });
  } else if (src.format == "lavis") {
    MSMEDCAP_CHECK(exists(annotations), annotations, ": no such file");
    const Json list = parse_json_text(core::read_file(annotations), annotations);
    MSMEDCAP_CHECK(list.is_array(), annotations, ": a LAVIS annotation file is a JSON list");
    for (size_t i = 0; i < list.size(); ++i) {
      Json row = list[i];
      if (row.is_object() && row.contains("image_id") && !row.contains("id")) row["id"] = row["image_id"];
      add_generic(out, row, annotations + ": entry " + std::to_string(i), std::to_string(i));
    }
  } else if (src.format == "csv") {
    MSMEDCAP_CHECK(exists(annotations), annotations, ": no such file");
    std::vector<size_t> lines;
    const auto rows = parse_csv(core::read_file(annotations), annotations, &lines);
    MSMEDCAP_CHECK(!rows.empty(), annotations, ": empty CSV (expected a header with image and caption)");
    const auto& header = rows[0];
    auto column = [&](const std::string& name) {
      const auto it = std::find(header.begin(), header.end(), name);
      return it == header.end() ? -1 : static_cast<int>(it - header.begin());
    };
    const int image = column("image"), caption = column("caption"), id = column("id");
    MSMEDCAP_CHECK(image >= 0 && caption >= 0, annotations, ":1: header needs 'image' and 'caption' columns");
    for (size_t r = 1; r < rows.size(); ++r) {
      const std::string where = annotations + ":" + std::to_string(lines[r]);
      if (rows[r].size() == 1 && trim(rows[r][0]).empty()) continue;
      if (rows[r].size() != header.size()) {
        out.malformed(where, std::to_string(rows[r].size()) + " fields, header has " + std::to_string(header.size()));
        continue;
      }
      Sample s;
      s.id = id >= 0 ? rows[r][id] : std::to_string(r);
      s.image = rows[r][image];
      s.captions = {rows[r][caption]};
      for (size_t k = 0; k < header.size(); ++k) {
        if (static_cast<int>(k) != image && static_cast<int>(k) != caption && static_cast<int>(k) != id) {
          s.attributes[header[k]] = rows[r][k];
        }
      }
      out.add(std::move(s), where);
    }
  } else if (src.format == "roco") {
    // data/{split}/{subset}/captions.txt: "ROCO_00001\t caption"; images/ROCO_00001.jpg.
    std::string dir = root + "/data/" + src.split + "/" + src.subset;
    if (!exists(dir)) dir = root + "/" + src.split + "/" + src.subset;
    const std::string file = dir + "/captions.txt";
    out.set_image_root(dir + "/images");
    const auto lines = read_lines(file);
    for (size_t i = 0; i < lines.size(); ++i) {
      if (trim(lines[i]).empty()) continue;
      const std::string where = file + ":" + std::to_string(i + 1);
      const auto tab = lines[i].find('\t');
      if (tab == std::string::npos) {
        out.malformed(where, "expected 'ID<TAB> caption'");
        continue;
      }
      Sample s;
      s.id = trim(lines[i].substr(0, tab));
      s.image = s.id + ".jpg";
      s.captions = {lines[i].substr(tab + 1)};
      s.attributes["split"] = src.split;
      out.add(std::move(s), where);
    }
  } else if (src.format == "rocov2") {
    // {split}_captions.csv with header "ID,Caption"; images {split}/{ID}.jpg.
    const std::string file = root + "/" + src.split + "_captions.csv";
    MSMEDCAP_CHECK(exists(file), file, ": no such file");
    std::vector<size_t> lines;
    const auto rows = parse_csv(core::read_file(file), file, &lines);
    MSMEDCAP_CHECK(!rows.empty() && rows[0].size() >= 2 && rows[0][0] == "ID" && rows[0][1] == "Caption", file,
                   ":1: expected the header ID,Caption");
    out.set_image_root(root + "/" + src.split);
    for (size_t r = 1; r < rows.size(); ++r) {
      const std::string where = file + ":" + std::to_string(lines[r]);
      if (rows[r].size() == 1 && trim(rows[r][0]).empty()) continue;
      if (rows[r].size() != 2) {
        out.malformed(where, std::to_string(rows[r].size()) + " fields, expected ID,Caption");
        continue;
      }
      Sample s;
      s.id = rows[r][0];
      s.image = s.id + ".jpg";
      s.captions = {rows[r][1]};
      s.attributes["split"] = src.split;
      out.add(std::move(s), where);
    }
  } else if (src.format == "medicat") {
    // One JSON object per figure; images figures/{pdf_hash}_{fig_uri}; split by pdf_hash.
    const std::string file =
        src.annotations.empty() ? root + "/s2_full_figures_oa_nonroco_combined_medical_top4_public.jsonl" : annotations;
    out.set_image_root(root + "/figures");
    read_jsonl(out, file, [&src](Collector& c, const Json& row, const std::string& where, size_t) {
      if (!row.is_object() || !row.contains("pdf_hash") || !row["pdf_hash"].is_string() || !row.contains("fig_uri") ||
          !row["fig_uri"].is_string()) {
        return c.malformed(where, "needs string fields pdf_hash and fig_uri");
      }
      const std::string hash = row["pdf_hash"].get<std::string>();
      const std::string split = medicat_split(hash);
      if (!src.split.empty() && split != src.split) return;
      Sample s;
      s.id = hash + "_" + row["fig_uri"].get<std::string>();
      s.image = s.id;
      if (row.contains("s2_caption") && row["s2_caption"].is_string()) {
        s.captions = {strip_figure_label(row["s2_caption"].get<std::string>())};
      }
      s.attributes["pdf_hash"] = hash;
      s.attributes["split"] = split;
      if (row.contains("radiology")) s.attributes["radiology"] = scalar_text(row["radiology"]);
      c.add(std::move(s), where);
    });
  } else if (src.format == "r2gen") {
    // annotation.json {"train": [...], "val": [...], "test": [...]}; images/<image_path[0]>.
    const std::string file = src.annotations.empty() ? root + "/annotation.json" : annotations;
    MSMEDCAP_CHECK(exists(file), file, ": no such file");
    const Json doc = parse_json_text(core::read_file(file), file);
    MSMEDCAP_CHECK(doc.is_object() && doc.contains(src.split) && doc[src.split].is_array(), file, ": no \"", src.split,
                   "\" list (R2Gen splits are train, val, test)");
    out.set_image_root(root + "/images");
    const auto& list = doc[src.split];
    for (size_t i = 0; i < list.size(); ++i) {
      const std::string where = file + ": " + src.split + "[" + std::to_string(i) + "]";
      const auto& row = list[i];
      if (!row.is_object() || !row.contains("image_path") || !row["image_path"].is_array() ||
          row["image_path"].empty() || !row["image_path"][0].is_string()) {
        out.malformed(where, "needs image_path, a non-empty list of strings");
        continue;
      }
      Sample s;
      s.id = row.contains("id") ? scalar_text(row["id"]) : std::to_string(i);
      s.image = row["image_path"][0].get<std::string>();
      if (row.contains("report") && row["report"].is_string()) s.captions = {row["report"].get<std::string>()};
      s.attributes["views"] = std::to_string(row["image_path"].size());
      s.attributes["split"] = src.split;
      out.add(std::move(s), where);
    }
  }
  return out.take(describe_source(src));
}

std::vector<Sample> read_datasets(const config::DatasetConfig& data, const std::string& section) {
  MSMEDCAP_CHECK(!data.sources.empty(), "the config's ", section, " section has no sources");
  std::vector<Sample> all;
  for (const auto& source : data.sources) {
    auto samples = read_dataset(source);
    all.insert(all.end(), samples.begin(), samples.end());
  }
  return all;
}

std::string describe_source(const config::DatasetSourceConfig& src) {
  return src.format + " source " + (src.annotations.empty() ? src.root : joined(src.root, src.annotations));
}

}  // namespace msmedcap::data
