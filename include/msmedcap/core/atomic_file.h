#pragma once
/// Crash-safe file writes: data goes to a temporary file beside the target, is fsynced, then
/// renamed over the target (and the directory fsynced), so a reader sees either the old file or
/// the complete new one, never a half-written file; a failure (full disk, EIO) leaves the old
/// file untouched and throws msmedcap::Error naming the path.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace msmedcap::core {

/// An open temporary file that becomes `path` on commit(); destroyed uncommitted, it is removed.
class AtomicFile {
 public:
  explicit AtomicFile(std::string path);
  ~AtomicFile();
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  /// Appends bytes; throws on a short write (e.g. ENOSPC) naming the target path.
  void write(const void* data, size_t size);
  void write(std::string_view bytes) { write(bytes.data(), bytes.size()); }
  /// fsync, close, rename over the target, fsync the directory.
  void commit();
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  std::string temp_path_;
  int fd_ = -1;
  bool committed_ = false;
};

/// Writes `bytes` to `path` through an AtomicFile.
void write_file_atomic(const std::string& path, std::string_view bytes);

/// Reads a whole file; throws naming the path when it cannot be read.
std::string read_file(const std::string& path);

}  // namespace msmedcap::core
