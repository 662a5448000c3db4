#include "targets.h"

#include <unistd.h>

#include <filesystem>
#include <algorithm>
#include <fstream>
#include <map>
#include <memory>
#include <stdexcept>

#include "msmedcap/config/config_io.h"
#include "msmedcap/config/json_depth.h"
#include "msmedcap/config/run_config.h"
#include "msmedcap/core/check.h"
#include "msmedcap/data/datasets.h"
#include "msmedcap/data/image_io.h"
#include "msmedcap/data/sentencepiece.h"
#include "msmedcap/data/tokenizer.h"
#include "msmedcap/io/safetensors.h"

namespace msmedcap::fuzz {
namespace {

std::string bytes_of(const uint8_t* data, size_t size) {
  return std::string(reinterpret_cast<const char*>(data), size);
}

void broken(const std::string& what) { throw std::logic_error("fuzz invariant broken: " + what); }

/// The safetensors reader on arbitrary bytes: it either throws msmedcap::Error or yields a
/// table whose every tensor's bytes lie inside the image (read here, so ASan sees any overrun).
void safetensors(const uint8_t* data, size_t size) {
  try {
    const auto file = io::SafetensorsFile::from_bytes(bytes_of(data, size), "fuzz");
    volatile uint8_t sink = 0;
    for (const auto& t : file.tensors()) {
      if (t.num_bytes() == 0) continue;
      const uint8_t* p = file.data(t);
      sink = sink ^ p[0] ^ p[t.num_bytes() - 1];
      if (file.find(t.name) != &t) broken("find(" + t.name + ") returns another entry");
    }
    for (const auto& [key, value] : file.metadata()) sink = sink ^ static_cast<uint8_t>(key.size() + value.size());
  } catch (const Error&) {}
}

/// The config loader: the first line is a `--set a.b=v` override, the rest a JSON config.
void config(const uint8_t* data, size_t size) {
  const std::string text = bytes_of(data, size);
  const auto newline = text.find('\n');
  const std::string assignment = text.substr(0, newline);
  const std::string body = newline == std::string::npos ? std::string("{}") : text.substr(newline + 1);
  auto json = config::Json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (json.is_discarded() || !json.is_object()) return;
  try {
    config::RunConfig cfg;
    config::from_json(json, cfg, "", "fuzz.json");
    config::apply_override(json, assignment);
    config::RunConfig again;
    config::from_json(json, again, "", "--set");
    again.validate();
    (void)config::to_json(again).dump();
  } catch (const Error&) {}
}

const std::string& datasets_folder() {
  static const std::string dir = [] {
    auto d = std::filesystem::temp_directory_path() / ("msmedcap-fuzz-datasets-" + std::to_string(getpid()));
    std::filesystem::create_directories(d);
    return d.string();
  }();
  return dir;
}

/// The dataset readers on arbitrary file contents, through read_dataset() as a user's file
/// reaches it; the first byte picks the reader: 0 generic JSONL, 1 CSV, 2 LAVIS JSON, 3 MedICaT
/// JSONL, 4 R2Gen JSON, 5 ROCO TSV, 6 ROCOv2 CSV.
void datasets(const uint8_t* data, size_t size) {
  if (size == 0) return;
  struct Reader {
    const char* format;
    const char* file;
  };
  static const Reader kReaders[] = {{"jsonl", "annotations.jsonl"},  {"csv", "annotations.csv"},
                                    {"lavis", "annotations.json"},   {"medicat", "annotations.jsonl"},
                                    {"r2gen", "annotation.json"},    {"roco", "data/train/radiology/captions.txt"},
                                    {"rocov2", "train_captions.csv"}};
  const Reader& reader = kReaders[data[0] % 7];
  const std::string bytes = bytes_of(data + 1, size - 1);
  const std::filesystem::path file = std::filesystem::path(datasets_folder()) / reader.file;
  std::filesystem::create_directories(file.parent_path());
  {
    std::ofstream out(file, std::ios::binary | std::ios::trunc);
    out << bytes;
  }
  try {
    (void)data::parse_csv(bytes, "fuzz.csv");
    config::DatasetSourceConfig source;
    source.format = reader.format;
    source.root = datasets_folder();
    source.split = "train";
    if (std::string(reader.format) != "roco" && std::string(reader.format) != "rocov2")
      source.annotations = reader.file;
    data::ReadReport report;
    (void)data::read_dataset(source, &report);
  } catch (const Error&) {}
}

/// WordPiece (BERT, the Q-Former's) and byte-level BPE (OPT, GPT-2) on arbitrary text, invalid
/// UTF-8 included: every id within the vocabulary, and decoding them works.
void tokenizers(const uint8_t* data, size_t size) {
  static const auto bert = data::load_tokenizer(std::string(MSMEDCAP_TEST_DATA_DIR) + "/tokenizers/bert");
  static const auto opt = data::load_tokenizer(std::string(MSMEDCAP_TEST_DATA_DIR) + "/tokenizers/opt");
  const std::string text = bytes_of(data, size);
  for (const auto* tok : {bert.get(), opt.get()}) {
    try {
      const auto ids = tok->encode(text);
      for (const auto id : ids) {
        if (id < 0 || id >= tok->vocab_size()) broken("token id " + std::to_string(id) + " outside the vocabulary");
      }
      (void)tok->decode(ids);
    } catch (const Error&) {}
  }
}

/// SentencePiece (LLaMA-family tokenizers) through its bridge: the first byte picks what the rest
/// is. Even: text, encoded with a BPE model trained here. Odd: a `.model` file (a serialized
/// protobuf, as in a downloaded checkpoint), loaded, then a fixed caption encoded with it. Every
/// id within the vocabulary, and decoding them works.
void sentencepiece(const uint8_t* data, size_t size) {
  static const std::string folder = [] {
    std::string pattern = (std::filesystem::temp_directory_path() / "msmedcap-fuzz-spm-XXXXXX").string();
    if (mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    return pattern;
  }();
  static const auto trained = [] {
    std::ofstream corpus(folder + "/corpus.txt");
    for (int i = 0; i < 20; ++i)
      corpus << "chest x-ray: 2.5 cm nodule in the right upper lobe\nno pleural effusion, heart size normal\n"
                "ct of the abdomen shows a 3 mm hypodense lesion in the left kidney\n";
    corpus.close();
    data::SentencePieceTokenizer::train("--input=" + folder + "/corpus.txt --model_prefix=" + folder +
                                        "/spm --vocab_size=80 --model_type=bpe --minloglevel=2");
    return std::make_unique<data::SentencePieceTokenizer>(folder + "/spm.model");
  }();
  if (size == 0) return;
  const auto check = [](const data::SentencePieceTokenizer& tok, const std::string& text) {
    const auto ids = tok.encode(text);
    for (const auto id : ids) {
      if (id < 0 || id >= tok.vocab_size())
        broken("sentencepiece id " + std::to_string(id) + " outside the vocabulary");
    }
    (void)tok.decode(ids);
  };
  try {
    if (data[0] % 2 == 0) {
      check(*trained, bytes_of(data + 1, size - 1));
      return;
    }
    const std::string path = folder + "/fuzz.model";
    std::ofstream(path, std::ios::binary) << bytes_of(data + 1, size - 1);
    const data::SentencePieceTokenizer loaded(path);
    check(loaded, "chest x-ray: 2.5 cm nodule in the right upper lobe");
  } catch (const Error&) {}
}

/// Image decoding by content: PNG, JPEG, TIFF, BMP through OpenCV; DICOM through GDCM, its JPEG
/// pixel data through our driver of GDCM's libjpeg builds (src/data/jpeg.h).
void image(const uint8_t* data, size_t size) {
  try {
    (void)data::decode_image_bytes(bytes_of(data, size), "fuzz");
  } catch (const Error&) {}
}

/// The CSV reader's quote handling: whatever it accepts, written back with every field quoted
/// (quotes doubled) parses to the same rows, and each row starts on a line after the previous.
void csv(const uint8_t* data, size_t size) {
  std::vector<size_t> lines;
  std::vector<std::vector<std::string>> rows;
  try {
    rows = data::parse_csv(bytes_of(data, size), "fuzz.csv", &lines);
  } catch (const Error&) {
    return;
  }
  if (lines.size() != rows.size()) broken("one line number per row");
  for (size_t i = 1; i < lines.size(); ++i)
    if (lines[i] <= lines[i - 1]) broken("row line numbers must increase");
  std::string written;
  for (const auto& row : rows) {
    for (size_t k = 0; k < row.size(); ++k) {
      std::string field;
      for (const char c : row[k]) field += c == '"' ? std::string("\"\"") : std::string(1, c);
      written += (k ? ",\"" : "\"") + field + "\"";
    }
    written += "\n";
  }
  if (data::parse_csv(written, "again.csv") != rows) broken("quoting every field changes the rows");
}

/// The JSON depth budget against the parser: text the check lets through parses (or fails to
/// parse) into a tree at most kMaxJsonDepth deep. The check may refuse more than the parser
/// reads: nlohmann's parser stops at a NUL byte, the check scans every byte (the first crash
/// input: "8\n\0" then deep brackets, a tree 0 deep).
void json_depth(const uint8_t* data, size_t size) {
  const std::string text = bytes_of(data, size);
  bool refused = false;
  try {
    config::check_json_depth(text, "fuzz.json");
  } catch (const Error&) {
    refused = true;
  }
  const auto json = config::Json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (json.is_discarded()) return;
  // The parsed tree's depth, without recursion (a deep tree is the point).
  int deepest = 0;
  std::vector<std::pair<const config::Json*, int>> stack{{&json, 0}};
  while (!stack.empty()) {
    const auto [node, depth] = stack.back();
    stack.pop_back();
    if (!node->is_structured()) continue;
    deepest = std::max(deepest, depth + 1);
    for (const auto& child : *node) stack.emplace_back(&child, depth + 1);
  }
  if (!refused && deepest > config::kMaxJsonDepth)
    broken("depth check let through a tree " + std::to_string(deepest) + " deep");
  if (refused && deepest <= config::kMaxJsonDepth && text.find('\0') == std::string::npos)
    broken("depth check refused a tree " + std::to_string(deepest) + " deep with no NUL byte");
}

const std::map<std::string, Target>& targets() {
  static const std::map<std::string, Target> all{
      {"safetensors", safetensors},     {"config", config}, {"datasets", datasets}, {"tokenizers", tokenizers},
      {"sentencepiece", sentencepiece}, {"image", image},   {"csv", csv},           {"json_depth", json_depth}};
  return all;
}

}  // namespace

std::vector<std::string> target_names() {
  std::vector<std::string> names;
  for (const auto& [name, fn] : targets()) names.push_back(name);
  return names;
}

Target target(const std::string& name) {
  const auto it = targets().find(name);
  if (it == targets().end()) throw std::invalid_argument("no fuzz target '" + name + "'");
  return it->second;
}

}  // namespace msmedcap::fuzz
