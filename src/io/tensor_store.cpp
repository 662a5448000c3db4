#include "msmedcap/io/tensor_store.h"

#include <ATen/ATen.h>
#include <sys/stat.h>

#include <cstdio>
#include <cstring>

#include "msmedcap/config/config_io.h"
#include "msmedcap/core/allocator.h"
#include "msmedcap/core/atomic_file.h"
#include "msmedcap/core/check.h"

namespace msmedcap::io {

namespace {

bool is_dir(const std::string& path) {
  struct stat st {};
  return stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}
bool is_file(const std::string& path) {
  struct stat st {};
  return stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}
bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}
std::string parent_dir(const std::string& path) {
  const auto slash = path.find_last_of('/');
  return slash == std::string::npos ? "." : path.substr(0, slash);
}

}  // namespace

c10::ScalarType to_scalar_type(DType dtype, const std::string& what) {
  switch (dtype) {
    case DType::BOOL:
      return at::kBool;
    case DType::U8:
      return at::kByte;
    case DType::I8:
      return at::kChar;
    case DType::I16:
      return at::kShort;
    case DType::F16:
      return at::kHalf;
    case DType::BF16:
      return at::kBFloat16;
    case DType::I32:
      return at::kInt;
    case DType::F32:
      return at::kFloat;
    case DType::F64:
      return at::kDouble;
    case DType::I64:
      return at::kLong;
    default:
      MSMEDCAP_FAIL(what.empty() ? "" : what + ": ", "dtype ", dtype_name(dtype),
                    " has no LibTorch equivalent in this build");
  }
}

DType from_scalar_type(c10::ScalarType type, const std::string& what) {
  switch (type) {
    case at::kBool:
      return DType::BOOL;
    case at::kByte:
      return DType::U8;
    case at::kChar:
      return DType::I8;
    case at::kShort:
      return DType::I16;
    case at::kHalf:
      return DType::F16;
    case at::kBFloat16:
      return DType::BF16;
    case at::kInt:
      return DType::I32;
    case at::kFloat:
      return DType::F32;
    case at::kDouble:
      return DType::F64;
    case at::kLong:
      return DType::I64;
    default:
      MSMEDCAP_FAIL(what.empty() ? "" : what + ": ", "scalar type ", c10::toString(type),
                    " cannot be stored in safetensors");
  }
}

TensorStore TensorStore::open(const std::string& path) {
  TensorStore store;
  store.path_ = path;
  std::string index_path;
  std::string single_path;
  if (is_dir(path)) {
    if (is_file(path + "/" + kIndexFileName)) {
      index_path = path + "/" + kIndexFileName;
    } else if (is_file(path + "/" + kWeightsFileName)) {
      single_path = path + "/" + kWeightsFileName;
    } else {
      MSMEDCAP_FAIL(path, ": directory holds neither ", kWeightsFileName, " nor ", kIndexFileName);
    }
  } else if (ends_with(path, ".json")) {
    index_path = path;
  } else {
    single_path = path;
  }

  if (!single_path.empty()) {
    store.files_.push_back(std::make_shared<SafetensorsFile>(single_path));
    store.metadata_ = store.files_.back()->metadata();
  } else {
    const config::Json index = config::read_json_file(index_path);
    MSMEDCAP_CHECK(index.is_object(), index_path, ": index must be a JSON object");
    const auto map_it = index.find("weight_map");
    MSMEDCAP_CHECK(map_it != index.end() && map_it->is_object(), index_path, ": missing \"weight_map\" object");
    if (auto meta = index.find("metadata"); meta != index.end() && meta->is_object()) {
      for (const auto& item : meta->items()) {
        store.metadata_.emplace_back(item.key(),
                                     item.value().is_string() ? item.value().get<std::string>() : item.value().dump());
      }
    }
    const std::string dir = parent_dir(index_path);
    std::map<std::string, size_t> shard_of_file;
    std::vector<std::pair<std::string, std::string>> wanted;  // (tensor, shard)
    for (const auto& item : map_it->items()) {
      MSMEDCAP_CHECK(item.value().is_string(), index_path, ": weight_map['", item.key(), "'] must be a file name");
      const std::string shard = item.value().get<std::string>();
      MSMEDCAP_CHECK(!shard.empty() && shard.find('/') == std::string::npos && shard != "." && shard != "..",
                     index_path, ": weight_map['", item.key(), "'] = '", shard,
                     "' is not a file name in the checkpoint directory");
      if (!shard_of_file.count(shard)) {
        shard_of_file[shard] = store.files_.size();
        store.files_.push_back(std::make_shared<SafetensorsFile>(dir + "/" + shard));
      }
      wanted.emplace_back(item.key(), shard);
    }
    for (const auto& [tensor, shard] : wanted) {
      MSMEDCAP_CHECK(store.files_[shard_of_file[shard]]->find(tensor) != nullptr, index_path, ": tensor '", tensor,
                     "' is mapped to ", shard, ", which does not hold it");
    }
  }

  for (size_t f = 0; f < store.files_.size(); ++f) {
    for (const auto& info : store.files_[f]->tensors()) {
      const auto [it, inserted] = store.where_.emplace(info.name, std::make_pair(f, &info));
      MSMEDCAP_CHECK(inserted, path, ": tensor '", info.name, "' appears in both ",
                     store.files_[it->second.first]->path(), " and ", store.files_[f]->path());
      store.names_.push_back(info.name);
    }
  }
  return store;
}

const TensorInfo& TensorStore::info(const std::string& name) const {
  const auto it = where_.find(name);
  MSMEDCAP_CHECK(it != where_.end(), path_, ": no tensor named '", name, "'");
  return *it->second.second;
}

const std::string& TensorStore::file_of(const std::string& name) const {
  const auto it = where_.find(name);
  MSMEDCAP_CHECK(it != where_.end(), path_, ": no tensor named '", name, "'");
  return files_[it->second.first]->path();
}

at::Tensor TensorStore::view(const std::string& name) const {
  const auto it = where_.find(name);
  MSMEDCAP_CHECK(it != where_.end(), path_, ": no tensor named '", name, "'");
  const auto& file = files_[it->second.first];
  const TensorInfo& info = *it->second.second;
  const auto type = to_scalar_type(info.dtype, file->path() + ": tensor '" + name + "'");
  const uint8_t* data = file->data(info);
  const auto options = at::TensorOptions().dtype(type).device(at::kCPU);
  const size_t element = dtype_size(info.dtype);
  if (info.num_bytes() == 0) return at::empty(info.shape, options);
  if (reinterpret_cast<uintptr_t>(data) % element != 0) {
    // Misaligned for its element type (a preceding tensor had an odd size): copy.
    auto out = at::empty(info.shape, options);
    std::memcpy(out.data_ptr(), data, info.num_bytes());
    return out;
  }
  auto keep_alive = file->source();
  return at::from_blob(
      const_cast<uint8_t*>(data), info.shape, [keep_alive](void*) mutable { keep_alive.reset(); }, options);
}

at::Tensor TensorSource::read(const std::string& name, c10::ScalarType dtype, c10::Device device) const {
  return tensor(name).to(device, dtype, /*non_blocking=*/false, /*copy=*/true);
}

at::Tensor TensorStore::read(const std::string& name, c10::ScalarType dtype, c10::Device device) const {
  const auto it = where_.find(name);
  MSMEDCAP_CHECK(it != where_.end(), path_, ": no tensor named '", name, "'");
  const auto& file = files_[it->second.first];
  const TensorInfo& info = *it->second.second;
  const ByteSource& source = *file->source();
  const size_t offset = static_cast<size_t>(file->data(info) - source.data()), bytes = info.num_bytes();
  at::Tensor out;
  if (device.is_cpu()) {
    // The new tensor's pages are made present at once, and the bytes read straight into it when
    // no conversion is needed: page faults were a third of a load's profile (core/allocator.h).
    out = at::empty(info.shape, at::TensorOptions().dtype(dtype));
    core::prefault_for_writing(out.data_ptr(), out.nbytes());
    if (bytes > 0 && dtype == to_scalar_type(info.dtype, file->path() + ": tensor '" + name + "'")) {
      source.copy_out(offset, bytes, out.data_ptr());
    } else if (bytes > 0) {
      source.prefetch(offset, bytes);
      out.copy_(view(name));
    }
  } else {
    out = view(name).to(device, dtype, /*non_blocking=*/false, /*copy=*/true);
  }
  source.release(offset, bytes);
  return out;
}

at::Tensor TensorStore::share(const std::string& name, c10::ScalarType dtype, c10::Device device) const {
  const auto it = where_.find(name);
  MSMEDCAP_CHECK(it != where_.end(), path_, ": no tensor named '", name, "'");
  const auto& file = files_[it->second.first];
  const TensorInfo& info = *it->second.second;
  const uint8_t* data = file->data(info);
  if (!device.is_cpu() || info.num_bytes() == 0 ||
      dtype != to_scalar_type(info.dtype, file->path() + ": tensor '" + name + "'") ||
      reinterpret_cast<uintptr_t>(data) % dtype_size(info.dtype) != 0)
    return read(name, dtype, device);
  file->source()->prefetch(static_cast<size_t>(data - file->source()->data()), info.num_bytes());
  return view(name);
}

std::vector<std::string> StateDictSource::tensor_names() const {
  std::vector<std::string> names;
  for (const auto& item : tensors_) names.push_back(item.first);
  return names;
}

std::vector<int64_t> StateDictSource::shape_of(const std::string& name) const { return tensor(name).sizes().vec(); }

at::Tensor StateDictSource::tensor(const std::string& name) const {
  const auto it = tensors_.find(name);
  MSMEDCAP_CHECK(it != tensors_.end(), description_, ": no tensor named '", name, "'");
  return it->second;
}

StateDict TensorStore::load_all() const {
  StateDict out;
  for (const auto& name : names_) out.emplace(name, view(name));
  return out;
}

std::vector<std::string> TensorStore::files() const {
  std::vector<std::string> out;
  for (const auto& f : files_) out.push_back(f->path());
  return out;
}

namespace {

std::vector<RawTensor> raw_tensors(const StateDict& tensors, std::vector<at::Tensor>& keep) {
  std::vector<RawTensor> raw;
  for (const auto& [name, tensor] : tensors) {
    MSMEDCAP_CHECK(tensor.defined(), "save: tensor '", name, "' is undefined");
    auto t = tensor.detach().to(at::kCPU).contiguous();
    keep.push_back(t);
    RawTensor r;
    r.name = name;
    r.dtype = from_scalar_type(t.scalar_type(), "save: tensor '" + name + "'");
    r.shape = t.sizes().vec();
    r.data = t.data_ptr();
    raw.push_back(std::move(r));
  }
  return raw;
}

}  // namespace

void save_safetensors(const std::string& path, const StateDict& tensors, const Metadata& metadata) {
  std::vector<at::Tensor> keep;
  write_safetensors(path, raw_tensors(tensors, keep), metadata);
}

std::vector<std::string> save_sharded(const std::string& dir, const StateDict& tensors, uint64_t max_shard_bytes,
                                      const Metadata& metadata) {
  MSMEDCAP_CHECK(max_shard_bytes > 0, "save_sharded: max_shard_bytes must be > 0");
  std::vector<StateDict> shards(1);
  uint64_t current = 0;
  uint64_t total = 0;
  for (const auto& [name, tensor] : tensors) {
    const uint64_t bytes = static_cast<uint64_t>(tensor.numel()) * tensor.element_size();
    if (current > 0 && current + bytes > max_shard_bytes) {
      shards.emplace_back();
      current = 0;
    }
    shards.back().emplace(name, tensor);
    current += bytes;
    total += bytes;
  }
  std::vector<std::string> written;
  if (shards.size() == 1) {
    save_safetensors(dir + "/" + kWeightsFileName, shards[0], metadata);
    written.push_back(dir + "/" + kWeightsFileName);
    return written;
  }
  config::Json index;
  index["metadata"]["total_size"] = total;
  index["weight_map"] = config::Json::object();
  const size_t n = shards.size();
  for (size_t k = 0; k < n; ++k) {
    char name[64];
    std::snprintf(name, sizeof(name), "model-%05zu-of-%05zu.safetensors", k + 1, n);
    save_safetensors(dir + "/" + name, shards[k], metadata);
    written.push_back(dir + "/" + name);
    for (const auto& item : shards[k]) index["weight_map"][item.first] = name;
  }
  // The index goes last, so a reader never sees an index naming a shard not yet written.
  core::write_file_atomic(dir + "/" + kIndexFileName, index.dump(2) + "\n");
  written.push_back(dir + "/" + kIndexFileName);
  return written;
}

config::Json describe(const TensorStore& store) {
  config::Json out;
  out["tensors"] = config::Json::array();
  uint64_t total_bytes = 0;
  int64_t total_parameters = 0;
  for (const auto& name : store.names()) {
    const TensorInfo& info = store.info(name);
    config::Json t;
    t["name"] = name;
    t["dtype"] = dtype_name(info.dtype);
    t["shape"] = info.shape;
    t["bytes"] = info.num_bytes();
    out["tensors"].push_back(std::move(t));
    total_bytes += info.num_bytes();
    total_parameters += info.num_elements();
  }
  out["total_bytes"] = total_bytes;
  out["total_parameters"] = total_parameters;
  out["files"] = store.files();
  out["metadata"] = config::Json::object();
  for (const auto& [key, value] : store.metadata()) out["metadata"][key] = value;
  return out;
}

}  // namespace msmedcap::io
