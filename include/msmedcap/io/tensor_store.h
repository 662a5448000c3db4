#pragma once
/// Named tensors on disk as LibTorch tensors: one safetensors file, a sharded checkpoint
/// (`model.safetensors.index.json` + shards, as HuggingFace writes them) or a directory holding
/// either. Reading is zero-copy where alignment allows; writing is atomic.

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "msmedcap/config/fields.h"
#include "msmedcap/io/safetensors.h"

namespace msmedcap::io {

/// Name -> tensor, sorted by name.
using StateDict = std::map<std::string, at::Tensor>;

/// LibTorch scalar type of a safetensors dtype (throws for types LibTorch lacks, e.g. U32).
c10::ScalarType to_scalar_type(DType dtype, const std::string& what = "");
/// safetensors dtype of a LibTorch scalar type (throws for unsupported types).
DType from_scalar_type(c10::ScalarType type, const std::string& what = "");

/// The sharded-checkpoint index file name HuggingFace uses.
inline constexpr const char* kIndexFileName = "model.safetensors.index.json";
/// The single-file checkpoint name HuggingFace uses.
inline constexpr const char* kWeightsFileName = "model.safetensors";

/// Named tensors to load from: a checkpoint on disk, or tensors renamed by the weight map.
class TensorSource {
 public:
  virtual ~TensorSource() = default;
  /// Tensor names in a stable order.
  virtual std::vector<std::string> tensor_names() const = 0;
  /// Shape of `name` (without reading its data).
  virtual std::vector<int64_t> shape_of(const std::string& name) const = 0;
  /// The tensor `name` (CPU; may share memory with the source).
  virtual at::Tensor tensor(const std::string& name) const = 0;
  /// A new tensor holding `name` in `dtype` on `device`, read once from the source (what the
  /// loader keeps). The default copies tensor(name).
  virtual at::Tensor read(const std::string& name, c10::ScalarType dtype, c10::Device device) const;
  /// As read(), but a file's tensor that needs no conversion may come back as a view of the
  /// file's pages, shared with the page cache (no copy; a write to it stays private to the
  /// process, copy on write). For models that are only read. The default reads.
  virtual at::Tensor share(const std::string& name, c10::ScalarType dtype, c10::Device device) const {
    return read(name, dtype, device);
  }
  /// What errors name: a path, or a path and a format.
  virtual std::string describe() const = 0;
};

/// Tensors held in memory under given names (e.g. after renaming).
class StateDictSource : public TensorSource {
 public:
  StateDictSource(StateDict tensors, std::string description)
      : tensors_(std::move(tensors)), description_(std::move(description)) {}
  std::vector<std::string> tensor_names() const override;
  std::vector<int64_t> shape_of(const std::string& name) const override;
  at::Tensor tensor(const std::string& name) const override;
  std::string describe() const override { return description_; }

 private:
  StateDict tensors_;
  std::string description_;
};

/// Read access to the tensors of one file, a sharded checkpoint or a model directory.
class TensorStore : public TensorSource {
 public:
  /// Opens PATH: a .safetensors file, a `*.index.json` file, or a directory containing
  /// model.safetensors.index.json or model.safetensors. Throws naming the path on any problem.
  static TensorStore open(const std::string& path);

  /// Tensor names in storage order (file by file, ascending offsets).
  const std::vector<std::string>& names() const { return names_; }
  bool contains(const std::string& name) const { return where_.count(name) > 0; }
  /// The header entry of `name` (throws when absent).
  const TensorInfo& info(const std::string& name) const;
  /// The file that holds `name`.
  const std::string& file_of(const std::string& name) const;
  /// A CPU tensor over the mapped bytes (no copy when aligned); writes stay private.
  at::Tensor view(const std::string& name) const;
  /// Every tensor, as views.
  StateDict load_all() const;
  /// The files opened (one, or every shard).
  std::vector<std::string> files() const;
  /// __metadata__ of a single file; the index's "metadata" object (values as text) if sharded.
  const Metadata& metadata() const { return metadata_; }
  /// Path given to open().
  const std::string& path() const { return path_; }

  std::vector<std::string> tensor_names() const override { return names_; }
  std::vector<int64_t> shape_of(const std::string& name) const override { return info(name).shape; }
  at::Tensor tensor(const std::string& name) const override { return view(name); }
  /// Converts the mapped bytes straight into a new tensor, then drops those pages from this
  /// process (the page cache keeps them), so that loading a model does not hold the file and
  /// the weights in memory at once. Do not mix with views of this store written in place.
  at::Tensor read(const std::string& name, c10::ScalarType dtype, c10::Device device) const override;
  /// A CPU tensor in the file's own dtype, aligned for it, is a view of the mapping whose pages
  /// are mapped in at once; anything else is read().
  at::Tensor share(const std::string& name, c10::ScalarType dtype, c10::Device device) const override;
  std::string describe() const override { return path_; }

 private:
  std::string path_;
  std::vector<std::shared_ptr<SafetensorsFile>> files_;
  std::map<std::string, std::pair<size_t, const TensorInfo*>> where_;
  std::vector<std::string> names_;
  Metadata metadata_;
};

/// Writes a state dict as one safetensors file (Python-compatible bytes), atomically.
void save_safetensors(const std::string& path, const StateDict& tensors, const Metadata& metadata = {{"format", "pt"}});

/// Writes a sharded checkpoint into `dir`: model-0000k-of-0000n.safetensors shards of at most
/// `max_shard_bytes` each (a larger tensor gets a shard of its own) plus the index, which is
/// written last. With a single shard it writes model.safetensors and no index. Returns the
/// files written.
std::vector<std::string> save_sharded(const std::string& dir, const StateDict& tensors, uint64_t max_shard_bytes,
                                      const Metadata& metadata = {{"format", "pt"}});

/// The listing `msmedcap inspect --json` prints: {"tensors": [{"name", "dtype", "shape",
/// "bytes"}], "total_bytes", "total_parameters", "files", "metadata"}.
config::Json describe(const TensorStore& store);

}  // namespace msmedcap::io
