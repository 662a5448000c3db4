#pragma once
/// Dataset sources: where captions and images are and in which published layout.

#include <cstdint>
#include <string>
#include <vector>

#include "msmedcap/config/fields.h"

namespace msmedcap::config {

/// One dataset source. Formats (DATA_AND_METRICS.md §A): jsonl, csv (generic {image, caption}),
/// lavis (JSON list), roco, rocov2, medicat, r2gen.
struct DatasetSourceConfig {
  std::string format = "jsonl";
  /// Dataset root; image paths are resolved inside it.
  std::string root;
  /// Annotation file for jsonl/csv/lavis/medicat/r2gen (relative to root unless absolute);
  /// roco and rocov2 find theirs from the split.
  std::string annotations;
  /// Split: train/validation/test (roco), train/valid/test (rocov2, medicat, r2gen: train/val/test);
  /// empty for generic files.
  std::string split;
  /// ROCO class folder: radiology or non-radiology.
  std::string subset = "radiology";
  /// Rows that cannot be parsed are skipped and counted instead of stopping the run.
  bool skip_malformed = false;
  /// Image paths may point outside `root` (off by default: paths never escape the root).
  bool allow_outside_root = false;

  template <class V>
  void visit(V& v) {
    v("format", format, "layout: jsonl, csv, lavis, roco, rocov2, medicat, r2gen");
    v("root", root, "dataset root; image paths resolve inside it");
    v("annotations", annotations, "annotation file (jsonl, csv, lavis, medicat, r2gen)");
    v("split", split, "split name in the layout's spelling");
    v("subset", subset, "ROCO class folder: radiology or non-radiology");
    v("skip_malformed", skip_malformed, "skip and count unparsable rows instead of failing");
    v("allow_outside_root", allow_outside_root, "let image paths leave the root");
  }
  void validate(const std::string& path) const;
};

}  // namespace msmedcap::config
