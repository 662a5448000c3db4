// The dataset readers on arbitrary file contents: generic JSONL and CSV, LAVIS JSON, MedICaT
// JSONL, R2Gen JSON, ROCO TSV and ROCOv2 CSV, through read_dataset() as a user's file reaches it. Each run writes the bytes to a file in a
// private temp folder; errors must be msmedcap::Error naming the file.
#include <unistd.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>

#include "msmedcap/core/check.h"
#include "msmedcap/data/datasets.h"

namespace {
const std::string& folder() {
  static const std::string dir = [] {
    auto d = std::filesystem::temp_directory_path() / ("msmedcap-fuzz-datasets-" + std::to_string(getpid()));
    std::filesystem::create_directories(d);
    return d.string();
  }();
  return dir;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  // The first byte picks the reader; each finds its file where that dataset keeps it.
  struct Reader {
    const char* format;
    const char* file;
  };
  static const Reader kReaders[] = {{"jsonl", "annotations.jsonl"},
                                    {"csv", "annotations.csv"},
                                    {"lavis", "annotations.json"},
                                    {"medicat", "annotations.jsonl"},
                                    {"r2gen", "annotation.json"},
                                    {"roco", "data/train/radiology/captions.txt"},
                                    {"rocov2", "train_captions.csv"}};
  const Reader& reader = kReaders[data[0] % 7];
  const std::string bytes(reinterpret_cast<const char*>(data) + 1, size - 1);
  const std::filesystem::path file = std::filesystem::path(folder()) / reader.file;
  std::filesystem::create_directories(file.parent_path());
  {
    std::ofstream out(file, std::ios::binary | std::ios::trunc);
    out << bytes;
  }
  try {
    (void)msmedcap::data::parse_csv(bytes, "fuzz.csv");
    msmedcap::config::DatasetSourceConfig source;
    source.format = reader.format;
    source.root = folder();
    source.split = "train";
    if (std::string(reader.format) != "roco" && std::string(reader.format) != "rocov2") source.annotations = reader.file;
    msmedcap::data::ReadReport report;
    (void)msmedcap::data::read_dataset(source, &report);
  } catch (const msmedcap::Error&) {
  }
  return 0;
}
