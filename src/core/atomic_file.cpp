#include "msmedcap/core/atomic_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "msmedcap/core/check.h"

namespace msmedcap::core {

namespace {
std::string dir_of(const std::string& path) {
  const auto slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}
}  // namespace

AtomicFile::AtomicFile(std::string path) : path_(std::move(path)) {
  temp_path_ = path_ + ".tmp.XXXXXX";
  fd_ = mkstemp(temp_path_.data());
  MSMEDCAP_CHECK(fd_ >= 0, path_, ": cannot create a temporary file beside it: ", std::strerror(errno));
  fchmod(fd_, 0644);
}

AtomicFile::~AtomicFile() {
  if (fd_ >= 0) close(fd_);
  if (!committed_) unlink(temp_path_.c_str());
}

void AtomicFile::write(const void* data, size_t size) {
  MSMEDCAP_CHECK(fd_ >= 0 && !committed_, path_, ": write after commit");
  const char* p = static_cast<const char*>(data);
  while (size > 0) {
    const ssize_t n = ::write(fd_, p, size);
    if (n < 0 && errno == EINTR) continue;
    MSMEDCAP_CHECK(n > 0, path_, ": write failed: ", n < 0 ? std::strerror(errno) : "no progress",
                   " (the previous file, if any, is untouched)");
    p += n;
    size -= static_cast<size_t>(n);
  }
}

void AtomicFile::commit() {
  MSMEDCAP_CHECK(fd_ >= 0 && !committed_, path_, ": commit twice");
  MSMEDCAP_CHECK(fsync(fd_) == 0, path_, ": fsync failed: ", std::strerror(errno),
                 " (the previous file, if any, is untouched)");
  const int rc = close(fd_);
  fd_ = -1;
  MSMEDCAP_CHECK(rc == 0, path_, ": close failed: ", std::strerror(errno));
  MSMEDCAP_CHECK(std::rename(temp_path_.c_str(), path_.c_str()) == 0, path_, ": rename failed: ", std::strerror(errno));
  committed_ = true;
  const int dir_fd = open(dir_of(path_).c_str(), O_RDONLY | O_DIRECTORY);
  if (dir_fd >= 0) {
    fsync(dir_fd);
    close(dir_fd);
  }
}

void write_file_atomic(const std::string& path, std::string_view bytes) {
  AtomicFile file(path);
  file.write(bytes);
  file.commit();
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  MSMEDCAP_CHECK(in.good(), path, ": cannot open: ", std::strerror(errno));
  std::ostringstream buffer;
  buffer << in.rdbuf();
  MSMEDCAP_CHECK(!in.bad(), path, ": read failed");
  return buffer.str();
}

}  // namespace msmedcap::core
