#pragma once
/// safetensors files without LibTorch: a memory-mapped reader that validates every header field
/// before any byte of tensor data is touched (malformed, truncated or hostile files get an error
/// naming the file and the fault, never a crash or an out-of-bounds read), and a writer whose
/// output is byte-identical to Python's `safetensors` (header order, 8-byte space padding).
/// Format: u64 little-endian header length N, N bytes of JSON header, then the data section.

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

namespace msmedcap::io {

/// Element types, declared in the order of safetensors' Rust `Dtype` enum (the writer sorts by
/// it, descending, to match Python's byte layout).
enum class DType { BOOL, U8, I8, F8_E5M2, F8_E4M3, I16, U16, F16, BF16, I32, U32, F32, F64, I64, U64 };

/// Bytes per element.
size_t dtype_size(DType dtype);
/// The header spelling ("F32", "BF16", ...).
const char* dtype_name(DType dtype);
/// Parses a header spelling; nullopt when unknown.
std::optional<DType> parse_dtype(const std::string& name);

/// One tensor's entry in a header. Offsets are relative to the start of the data section.
struct TensorInfo {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  uint64_t begin = 0;
  uint64_t end = 0;
  uint64_t num_bytes() const { return end - begin; }
  int64_t num_elements() const;
};

/// Ordered (key, value) pairs of the header's `__metadata__`, in file order.
using Metadata = std::vector<std::pair<std::string, std::string>>;

/// Bytes the reader looks at: a read-only memory mapping of a file, or an owned buffer.
class ByteSource {
 public:
  virtual ~ByteSource() = default;
  virtual const uint8_t* data() const = 0;
  virtual size_t size() const = 0;
  /// Lets the kernel drop [offset, offset + length) from this process where the bytes are a
  /// file mapping that can be read back (whole pages inside the range only); a no-op otherwise.
  virtual void release(size_t offset, size_t length) const { (void)offset, (void)length; }
  /// Copies [offset, offset + length) to `out`. A file is read with pread, which spares the
  /// page faults of copying through the mapping; bytes written in place through a private view
  /// are not seen.
  virtual void copy_out(size_t offset, size_t length, void* out) const;
  /// Maps [offset, offset + length) into this process in one call ahead of reading it through
  /// data() (a file's pages from the page cache); a no-op where the bytes are in memory.
  virtual void prefetch(size_t offset, size_t length) const { (void)offset, (void)length; }
};

/// A validated safetensors file. Construction checks everything; afterwards every
/// data(info) pointer is in bounds.
class SafetensorsFile {
 public:
  /// Header size cap (Python safetensors uses the same 100 MB limit).
  static constexpr uint64_t kMaxHeaderBytes = 100'000'000;

  /// Memory-maps and validates `path`. Throws msmedcap::Error naming the file on any problem.
  explicit SafetensorsFile(const std::string& path);
  /// Validates an in-memory file image (tests and fuzzers); `name` appears in errors.
  static SafetensorsFile from_bytes(std::string bytes, const std::string& name);

  const std::string& path() const { return path_; }
  /// Tensors in data order (ascending offsets).
  const std::vector<TensorInfo>& tensors() const { return tensors_; }
  /// The entry named `name`, or nullptr.
  const TensorInfo* find(const std::string& name) const;
  const Metadata& metadata() const { return metadata_; }
  /// First byte of a tensor's data (in bounds by construction).
  const uint8_t* data(const TensorInfo& info) const;
  /// Size of the whole file image in bytes.
  size_t file_size() const { return source_->size(); }
  /// Keeps the underlying bytes alive (tensor views share it).
  std::shared_ptr<const ByteSource> source() const { return source_; }

 private:
  SafetensorsFile(std::shared_ptr<const ByteSource> source, std::string path);
  void parse();

  std::shared_ptr<const ByteSource> source_;
  std::string path_;
  uint64_t data_start_ = 0;
  std::vector<TensorInfo> tensors_;
  std::unordered_map<std::string, size_t> index_;
  Metadata metadata_;
};

/// A tensor to write: name, type, shape and a pointer to its contiguous little-endian bytes.
struct RawTensor {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  const void* data = nullptr;
};

/// Builds a safetensors file image exactly as Python's safetensors does: tensors sorted by
/// dtype (descending enum order) then name, header `{"__metadata__":{...},"name":{"dtype":..,
/// "shape":[..],"data_offsets":[b,e]},...}` padded with spaces to a multiple of 8 bytes.
/// Throws on duplicate or empty names.
std::string serialize_safetensors(const std::vector<RawTensor>& tensors, const Metadata& metadata = {});

/// Writes serialize_safetensors(...) to `path` atomically (temp file, fsync, rename).
void write_safetensors(const std::string& path, const std::vector<RawTensor>& tensors, const Metadata& metadata = {});

}  // namespace msmedcap::io
