#include "msmedcap/io/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <set>

#include "msmedcap/config/json_depth.h"
#include "msmedcap/core/atomic_file.h"
#include "msmedcap/core/check.h"

namespace msmedcap::io {

namespace {

struct DTypeRow {
  DType dtype;
  const char* name;
  size_t size;
};
constexpr DTypeRow kDTypes[] = {
    {DType::BOOL, "BOOL", 1},       {DType::U8, "U8", 1},   {DType::I8, "I8", 1},   {DType::F8_E5M2, "F8_E5M2", 1},
    {DType::F8_E4M3, "F8_E4M3", 1}, {DType::I16, "I16", 2}, {DType::U16, "U16", 2}, {DType::F16, "F16", 2},
    {DType::BF16, "BF16", 2},       {DType::I32, "I32", 4}, {DType::U32, "U32", 4}, {DType::F32, "F32", 4},
    {DType::F64, "F64", 8},         {DType::I64, "I64", 8}, {DType::U64, "U64", 8}};

const DTypeRow& row(DType dtype) {
  for (const auto& r : kDTypes) {
    if (r.dtype == dtype) return r;
  }
  MSMEDCAP_FAIL("safetensors: invalid dtype value ", static_cast<int>(dtype));
}

class MappedFile final : public ByteSource {
 public:
  explicit MappedFile(const std::string& path) : path_(path) {
    const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
    MSMEDCAP_CHECK(fd >= 0, path, ": cannot open: ", std::strerror(errno));
    struct stat st {};
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
      close(fd);
      MSMEDCAP_FAIL(path, ": not a regular file");
    }
    size_ = static_cast<size_t>(st.st_size);
    if (size_ > 0) {
      // Private + writable: a tensor viewing these pages may be modified in place; the change
      // stays in this process (copy-on-write) and never reaches the file.
      void* addr = mmap(nullptr, size_, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
      if (addr == MAP_FAILED) {
        const int err = errno;
        close(fd);
        MSMEDCAP_FAIL(path, ": mmap failed: ", std::strerror(err));
      }
      addr_ = static_cast<uint8_t*>(addr);
    }
    fd_ = fd;  // kept for copy_out
  }
  ~MappedFile() override {
    if (addr_ != nullptr) munmap(addr_, size_);
    close(fd_);
  }
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  const uint8_t* data() const override { return addr_; }
  size_t size() const override { return size_; }
  void release(size_t offset, size_t length) const override {
    const auto page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
    const size_t first = (offset + page - 1) / page * page;
    const size_t last = std::min(offset + length, size_) / page * page;
    if (last > first) madvise(addr_ + first, last - first, MADV_DONTNEED);
  }
  void copy_out(size_t offset, size_t length, void* out) const override {
    MSMEDCAP_CHECK(offset <= size_ && length <= size_ - offset, path_, ": read of [", offset, ", ", offset + length,
                   ") past the end (", size_, " bytes)");
    auto* dst = static_cast<uint8_t*>(out);
    while (length > 0) {
      const ssize_t got = pread(fd_, dst, length, static_cast<off_t>(offset));
      if (got < 0 && errno == EINTR) continue;
      MSMEDCAP_CHECK(got > 0, path_, ": read failed at byte ", offset, ": ",
                     got == 0 ? std::string("the file is shorter than when it was opened") : std::strerror(errno));
      dst += got, offset += static_cast<size_t>(got), length -= static_cast<size_t>(got);
    }
  }
  void prefetch(size_t offset, size_t length) const override {
#if defined(MADV_POPULATE_READ)
    constexpr int kPopulateRead = MADV_POPULATE_READ;
#else
    constexpr int kPopulateRead = 22;  // Linux 5.14's value; older kernels answer EINVAL
#endif
    const auto page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
    const size_t first = offset / page * page, last = std::min(offset + length, size_);
    if (last > first) madvise(addr_ + first, last - first, kPopulateRead);
  }

 private:
  std::string path_;
  int fd_ = -1;
  uint8_t* addr_ = nullptr;
  size_t size_ = 0;
};

class OwnedBytes final : public ByteSource {
 public:
  explicit OwnedBytes(std::string bytes) : bytes_(std::move(bytes)) {}
  const uint8_t* data() const override { return reinterpret_cast<const uint8_t*>(bytes_.data()); }
  size_t size() const override { return bytes_.size(); }

 private:
  std::string bytes_;
};

std::string shape_text(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

std::string offsets_text(const TensorInfo& t) {
  return "[" + std::to_string(t.begin) + ", " + std::to_string(t.end) + "]";
}

uint64_t read_u64(const nlohmann::ordered_json& j, const std::string& where) {
  MSMEDCAP_CHECK(j.is_number_unsigned() || (j.is_number_integer() && j.get<int64_t>() >= 0), where,
                 ": expected a non-negative integer, got ", j.dump());
  return j.get<uint64_t>();
}

}  // namespace

void ByteSource::copy_out(size_t offset, size_t length, void* out) const {
  MSMEDCAP_CHECK(offset <= size() && length <= size() - offset, "read of [", offset, ", ", offset + length,
                 ") past the end (", size(), " bytes)");
  if (length > 0) std::memcpy(out, data() + offset, length);
}

size_t dtype_size(DType dtype) { return row(dtype).size; }
const char* dtype_name(DType dtype) { return row(dtype).name; }
std::optional<DType> parse_dtype(const std::string& name) {
  for (const auto& r : kDTypes) {
    if (name == r.name) return r.dtype;
  }
  return std::nullopt;
}

int64_t TensorInfo::num_elements() const {
  int64_t n = 1;
  for (const auto d : shape) n *= d;
  return n;
}

SafetensorsFile::SafetensorsFile(const std::string& path) : SafetensorsFile(std::make_shared<MappedFile>(path), path) {}

SafetensorsFile::SafetensorsFile(std::shared_ptr<const ByteSource> source, std::string path)
    : source_(std::move(source)), path_(std::move(path)) {
  parse();
}

SafetensorsFile SafetensorsFile::from_bytes(std::string bytes, const std::string& name) {
  return SafetensorsFile(std::make_shared<OwnedBytes>(std::move(bytes)), name);
}

const TensorInfo* SafetensorsFile::find(const std::string& name) const {
  const auto it = index_.find(name);
  return it == index_.end() ? nullptr : &tensors_[it->second];
}

const uint8_t* SafetensorsFile::data(const TensorInfo& info) const {
  return source_->data() + data_start_ + info.begin;
}

void SafetensorsFile::parse() {
  const size_t size = source_->size();
  const uint8_t* bytes = source_->data();
  const std::string& file = path_;
  MSMEDCAP_CHECK(size >= 8, file, ": not a safetensors file: ", size, " bytes, shorter than the 8-byte header length");
  uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | bytes[i];
  MSMEDCAP_CHECK(header_len <= kMaxHeaderBytes, file, ": header length ", header_len, " exceeds the ", kMaxHeaderBytes,
                 "-byte limit (corrupt or hostile file)");
  MSMEDCAP_CHECK(header_len <= size - 8, file, ": header length ", header_len, " reaches beyond the end of the file (",
                 size, " bytes): truncated file");
  MSMEDCAP_CHECK(header_len >= 2 && bytes[8] == '{', file, ": header does not start with a JSON object");
  data_start_ = 8 + header_len;
  const uint64_t data_size = size - data_start_;

  // Parse, refusing duplicate tensor names (a JSON parser would silently keep one of them).
  std::set<std::string> seen;
  std::string duplicate;
  nlohmann::ordered_json header;
  const char* header_text = reinterpret_cast<const char*>(bytes + 8);
  config::check_json_depth(header_text, header_text + header_len, file + " header");
  try {
    header = nlohmann::ordered_json::parse(
        bytes + 8, bytes + 8 + header_len,
        [&](int depth, nlohmann::ordered_json::parse_event_t event, nlohmann::ordered_json& parsed) {
          if (depth == 1 && event == nlohmann::ordered_json::parse_event_t::key) {
            const auto key = parsed.get<std::string>();
            if (!seen.insert(key).second && duplicate.empty()) duplicate = key;
          }
          return true;
        });
  } catch (const nlohmann::json::exception& e) {
    std::string what = e.what();
    const auto colon = what.rfind(": ");
    if (colon != std::string::npos) what = what.substr(colon + 2);
    MSMEDCAP_FAIL(file, ": header is not valid JSON: ", what);
  }
  MSMEDCAP_CHECK(duplicate.empty(), file, ": header lists '", duplicate, "' twice");
  MSMEDCAP_CHECK(header.is_object(), file, ": header is not a JSON object");

  for (auto it = header.begin(); it != header.end(); ++it) {
    const std::string& name = it.key();
    const auto& entry = it.value();
    if (name == "__metadata__") {
      MSMEDCAP_CHECK(entry.is_object(), file, ": __metadata__ must be an object of strings");
      for (auto m = entry.begin(); m != entry.end(); ++m) {
        MSMEDCAP_CHECK(m.value().is_string(), file, ": __metadata__['", m.key(), "'] must be a string, got ",
                       m.value().dump());
        metadata_.emplace_back(m.key(), m.value().get<std::string>());
      }
      continue;
    }
    const std::string where = file + ": tensor '" + name + "'";
    MSMEDCAP_CHECK(entry.is_object(), where, ": entry must be an object");
    const auto dtype_it = entry.find("dtype");
    const auto shape_it = entry.find("shape");
    const auto offsets_it = entry.find("data_offsets");
    MSMEDCAP_CHECK(dtype_it != entry.end() && shape_it != entry.end() && offsets_it != entry.end(), where,
                   ": entry needs dtype, shape and data_offsets");
    TensorInfo info;
    info.name = name;
    MSMEDCAP_CHECK(dtype_it->is_string(), where, ": dtype must be a string");
    const auto dtype = parse_dtype(dtype_it->get<std::string>());
    MSMEDCAP_CHECK(dtype.has_value(), where, ": unknown dtype '", dtype_it->get<std::string>(), "'");
    info.dtype = *dtype;
    MSMEDCAP_CHECK(shape_it->is_array(), where, ": shape must be an array");
    uint64_t elements = 1;
    bool overflow = false;
    for (const auto& d : *shape_it) {
      const uint64_t dim = read_u64(d, where + " shape");
      MSMEDCAP_CHECK(dim <= static_cast<uint64_t>(INT64_MAX), where, ": dimension too large");
      info.shape.push_back(static_cast<int64_t>(dim));
      overflow = overflow || __builtin_mul_overflow(elements, dim, &elements);
    }
    uint64_t expected = 0;
    overflow = overflow || __builtin_mul_overflow(elements, dtype_size(info.dtype), &expected);
    MSMEDCAP_CHECK(!overflow, where, ": shape ", shape_text(info.shape), " overflows 64-bit byte counts");
    MSMEDCAP_CHECK(offsets_it->is_array() && offsets_it->size() == 2, where, ": data_offsets must be [begin, end]");
    info.begin = read_u64((*offsets_it)[0], where + " data_offsets");
    info.end = read_u64((*offsets_it)[1], where + " data_offsets");
    MSMEDCAP_CHECK(info.begin <= info.end, where, ": data_offsets ", offsets_text(info), " end before they begin");
    MSMEDCAP_CHECK(info.end <= data_size, where, ": data_offsets ", offsets_text(info),
                   " reach beyond the data section (", data_size, " bytes): truncated file or bad offsets");
    MSMEDCAP_CHECK(info.num_bytes() == expected, where, ": ", dtype_name(info.dtype), " shape ", shape_text(info.shape),
                   " needs ", expected, " bytes but data_offsets ", offsets_text(info), " span ", info.num_bytes());
    tensors_.push_back(std::move(info));
  }

  // The data section must be tiled exactly: ordered, no overlap, no gap, nothing left over.
  std::stable_sort(tensors_.begin(), tensors_.end(), [](const TensorInfo& a, const TensorInfo& b) {
    return std::tie(a.begin, a.end) < std::tie(b.begin, b.end);
  });
  uint64_t cursor = 0;
  const TensorInfo* previous = nullptr;
  for (const auto& t : tensors_) {
    MSMEDCAP_CHECK(t.begin >= cursor, file, ": tensor '", t.name, "' data_offsets ", offsets_text(t),
                   " overlap tensor '", previous ? previous->name : "", "' ", previous ? offsets_text(*previous) : "");
    MSMEDCAP_CHECK(t.begin == cursor, file, ": ", t.begin - cursor, " unaccounted bytes before tensor '", t.name,
                   "' (data_offsets ", offsets_text(t), ")");
    cursor = t.end;
    previous = &t;
  }
  MSMEDCAP_CHECK(cursor == data_size, file, ": ", data_size - cursor,
                 " bytes after the last tensor are not described by the header");
  for (size_t i = 0; i < tensors_.size(); ++i) index_.emplace(tensors_[i].name, i);
}

namespace {

/// Sorts like safetensors' Rust `prepare`: dtype descending, then name ascending.
std::vector<const RawTensor*> writer_order(const std::vector<RawTensor>& tensors) {
  std::vector<const RawTensor*> order;
  std::set<std::string> names;
  for (const auto& t : tensors) {
    MSMEDCAP_CHECK(!t.name.empty() && t.name != "__metadata__",
                   "safetensors writer: invalid "
                   "tensor name '",
                   t.name, "'");
    MSMEDCAP_CHECK(names.insert(t.name).second, "safetensors writer: tensor '", t.name, "' given twice");
    for (const auto d : t.shape) {
      MSMEDCAP_CHECK(d >= 0, "safetensors writer: tensor '", t.name, "' has a negative dim");
    }
    order.push_back(&t);
  }
  std::stable_sort(order.begin(), order.end(), [](const RawTensor* a, const RawTensor* b) {
    if (a->dtype != b->dtype) return static_cast<int>(a->dtype) > static_cast<int>(b->dtype);
    return a->name < b->name;
  });
  return order;
}

uint64_t raw_bytes(const RawTensor& t) {
  uint64_t n = dtype_size(t.dtype);
  for (const auto d : t.shape) n *= static_cast<uint64_t>(d);
  return n;
}

std::string json_string(const std::string& s) { return nlohmann::json(s).dump(); }

std::string header_for(const std::vector<const RawTensor*>& order, const Metadata& metadata) {
  std::string h = "{";
  bool first = true;
  if (!metadata.empty()) {
    h += "\"__metadata__\":{";
    for (size_t i = 0; i < metadata.size(); ++i) {
      h += (i ? "," : "") + json_string(metadata[i].first) + ":" + json_string(metadata[i].second);
    }
    h += "}";
    first = false;
  }
  uint64_t offset = 0;
  for (const RawTensor* t : order) {
    const uint64_t n = raw_bytes(*t);
    h += (first ? "" : ",") + json_string(t->name) + ":{\"dtype\":\"" + dtype_name(t->dtype) + "\",\"shape\":[";
    for (size_t i = 0; i < t->shape.size(); ++i) h += (i ? "," : "") + std::to_string(t->shape[i]);
    h += "],\"data_offsets\":[" + std::to_string(offset) + "," + std::to_string(offset + n) + "]}";
    offset += n;
    first = false;
  }
  h += "}";
  h.append((8 - h.size() % 8) % 8, ' ');
  return h;
}

template <class Sink>
void emit(const std::vector<RawTensor>& tensors, const Metadata& metadata, Sink&& sink) {
  const auto order = writer_order(tensors);
  const std::string header = header_for(order, metadata);
  uint8_t len[8];
  uint64_t n = header.size();
  for (int i = 0; i < 8; ++i, n >>= 8) len[i] = static_cast<uint8_t>(n & 0xff);
  sink(len, 8);
  sink(header.data(), header.size());
  for (const RawTensor* t : order) {
    const uint64_t bytes = raw_bytes(*t);
    MSMEDCAP_CHECK(bytes == 0 || t->data != nullptr, "safetensors writer: tensor '", t->name, "' has no data");
    if (bytes > 0) sink(t->data, bytes);
  }
}

}  // namespace

std::string serialize_safetensors(const std::vector<RawTensor>& tensors, const Metadata& metadata) {
  std::string out;
  emit(tensors, metadata, [&](const void* p, size_t n) { out.append(static_cast<const char*>(p), n); });
  return out;
}

void write_safetensors(const std::string& path, const std::vector<RawTensor>& tensors, const Metadata& metadata) {
  core::AtomicFile file(path);
  emit(tensors, metadata, [&](const void* p, size_t n) { file.write(p, n); });
  file.commit();
}

}  // namespace msmedcap::io
