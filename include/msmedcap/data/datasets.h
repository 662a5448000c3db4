#pragma once
/// Readers for the published caption datasets exactly as distributed (docs/DATA.md, "Datasets"):
/// ROCO (captions.txt per split and class), ROCOv2 (ID,Caption CSV per split), MedICaT (JSONL,
/// figures/{pdf_hash}_{fig_uri}, a deterministic split by pdf_hash), R2Gen annotation.json
/// (IU-Xray, MIMIC-CXR), the LAVIS JSON list, and generic JSONL / CSV {image, caption}.
/// A malformed row is an error naming file and line, or is skipped and counted when the source
/// says so; image paths never leave the dataset root unless allowed.

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "msmedcap/config/data_config.h"

namespace msmedcap::data {

/// One image with its reference captions.
struct Sample {
  std::string id;
  /// Absolute or root-joined path of the image file.
  std::string image;
  std::vector<std::string> captions;
  /// Extra fields of the row (e.g. a synthetic finding, pdf_hash, split).
  std::map<std::string, std::string> attributes;
  /// Root-joined path of the row's "mask": an 8-bit PNG of structure ids (0 background), as the
  /// synthetic benchmark writes them; sam_pretrain reads it. Empty when the row has none.
  std::string mask;
};

/// What a read met: rows read and skipped, and the first problems (file:line: reason).
struct ReadReport {
  int64_t read = 0;
  int64_t skipped = 0;
  std::vector<std::string> problems;  // at most kMaxProblems
  static constexpr size_t kMaxProblems = 20;
};

/// Reads one source. Throws msmedcap::Error naming file and line on malformed input unless
/// `source.skip_malformed`; rows without a caption or image are always skipped and counted.
/// Skipped rows are logged (the first kMaxProblems one by one, then their count), report or not.
std::vector<Sample> read_dataset(const config::DatasetSourceConfig& source, ReadReport* report = nullptr);

/// Every sample of a config section (`data` or `val_data`, named `section` in the error when it
/// has no sources), its sources read in order.
std::vector<Sample> read_datasets(const config::DatasetConfig& data, const std::string& section);

/// "csv source ROOT/FILE": how errors about a whole source name it.
std::string describe_source(const config::DatasetSourceConfig& source);

/// Parses RFC 4180 CSV text into rows (quoted fields, doubled quotes, CRLF). Throws with the
/// line number on an unterminated quote; `name` appears in errors. `lines`, when given, receives the line each row
/// starts on (quoted fields may span lines). A quoted field whose closing quote is not followed by a comma or the end
/// of the row is an error naming the line the quote opened on (a stray quote would otherwise swallow the rows after
/// it).
std::vector<std::vector<std::string>> parse_csv(const std::string& text, const std::string& name,
                                                std::vector<size_t>* lines = nullptr);

/// The MedICaT split of a paper: a stable hash of pdf_hash, 80% train, 10% val, 10% test.
std::string medicat_split(const std::string& pdf_hash);

/// Joins `relative` to `root`, refusing absolute paths and `..` that would leave the root
/// unless `allow_outside`; `where` names the file and line in errors.
std::string resolve_image_path(const std::string& root, const std::string& relative, bool allow_outside,
                               const std::string& where);

}  // namespace msmedcap::data
