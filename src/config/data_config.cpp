#include "msmedcap/config/data_config.h"

namespace msmedcap::config {

void DatasetSourceConfig::validate(const std::string& path) const {
  static const char* kFormats[] = {"jsonl", "csv", "lavis", "roco", "rocov2", "medicat", "r2gen"};
  MSMEDCAP_CHECK(std::find(std::begin(kFormats), std::end(kFormats), format) != std::end(kFormats), path,
                 ".format: expected jsonl, csv, lavis, roco, rocov2, medicat or r2gen, got '", format, "'");
  MSMEDCAP_CHECK(!root.empty(), path, ".root: must name the dataset folder");
  MSMEDCAP_CHECK(subset == "radiology" || subset == "non-radiology", path,
                 ".subset: expected radiology or non-radiology, got '", subset, "'");
  if (format == "roco" || format == "rocov2" || format == "r2gen") {
    MSMEDCAP_CHECK(!split.empty(), path, ".split: the ", format, " layout needs a split");
  }
  if (format == "jsonl" || format == "csv" || format == "lavis") {
    MSMEDCAP_CHECK(!annotations.empty(), path, ".annotations: the ", format, " layout needs an annotation file");
  }
}

}  // namespace msmedcap::config
