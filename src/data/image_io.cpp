#include "msmedcap/data/image_io.h"

#include <cerrno>
#include <cmath>
#include <cstring>
#include <stdexcept>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "decoders.h"
#include "msmedcap/core/check.h"

// The format dispatch, the VOI window and reading files with their budgets; the decoders
// themselves are src/data/raster.cpp (OpenCV) and src/data/dicom.cpp (GDCM, OpenJPEG, CharLS).
namespace msmedcap::data {

Window parse_window(const std::string& text, const std::string& what) {
  const auto comma = text.find(',');
  MSMEDCAP_CHECK(comma != std::string::npos, what, ": expected CENTER,WIDTH, got '", text, "'");
  Window w;
  try {
    size_t a = 0, b = 0;
    w.center = std::stod(text.substr(0, comma), &a);
    w.width = std::stod(text.substr(comma + 1), &b);
    MSMEDCAP_CHECK(a == comma && b == text.size() - comma - 1, what, ": expected CENTER,WIDTH, got '", text, "'");
  } catch (const std::logic_error&) {
    MSMEDCAP_FAIL(what, ": expected CENTER,WIDTH numbers, got '", text, "'");
  }
  MSMEDCAP_CHECK(std::isfinite(w.center) && std::isfinite(w.width) && w.width >= 1, what,
                 ": the window width must be at least 1, got '", text, "'");
  return w;
}

double apply_window(double value, const Window& window) {
  const double c = window.center - 0.5, w = window.width - 1.0;
  if (w <= 0) return value <= c ? 0.0 : 1.0;
  if (value <= c - w / 2) return 0.0;
  if (value > c + w / 2) return 1.0;
  return (value - c) / w + 0.5;
}

bool is_dicom(const std::string& bytes) {
  return bytes.size() >= 132 && std::memcmp(bytes.data() + 128, "DICM", 4) == 0;
}

DecodedImage decode_image_bytes(const std::string& bytes, const std::string& name, const DecodeOptions& options) {
  MSMEDCAP_CHECK(!bytes.empty(), name, ": empty image file");
  const bool dcm_name =
      name.size() > 4 && (name.substr(name.size() - 4) == ".dcm" || name.substr(name.size() - 4) == ".DCM");
  if (is_dicom(bytes) || dcm_name) return detail::decode_dicom(bytes, name, options);
  return detail::decode_raster(bytes, name, options);
}

DecodedImage decode_image(const std::string& path, const DecodeOptions& options) {
  // Opened without blocking (a FIFO would wait for a writer for ever), then refused unless it is
  // a regular file: a FIFO, a device (a link to /dev/zero reads without end) or a folder.
  const int fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  MSMEDCAP_CHECK(fd >= 0, path, ": cannot open: ", std::strerror(errno));
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  struct stat st {};
  MSMEDCAP_CHECK(::fstat(fd, &st) == 0, path, ": cannot stat: ", std::strerror(errno));
  MSMEDCAP_CHECK(S_ISREG(st.st_mode), path, ": not a regular file (",
                 S_ISFIFO(st.st_mode)                         ? "a FIFO"
                 : S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode) ? "a device"
                 : S_ISDIR(st.st_mode)                        ? "a folder"
                                                              : "a socket or other special file",
                 "); refused");
  MSMEDCAP_CHECK(st.st_size <= options.max_bytes, path, ": ", st.st_size >> 20,
                 " MiB exceed data.transform.max_image_mb (", options.max_bytes >> 20, ")");
  // Read at most the budget even if the file grows meanwhile.
  std::string bytes(static_cast<size_t>(st.st_size), '\0');
  size_t got = 0;
  while (got < bytes.size()) {
    const ssize_t r = ::read(fd, bytes.data() + got, bytes.size() - got);
    if (r < 0 && errno == EINTR) continue;
    MSMEDCAP_CHECK(r >= 0, path, ": read failed: ", std::strerror(errno));
    if (r == 0) break;
    got += static_cast<size_t>(r);
  }
  bytes.resize(got);
  return decode_image_bytes(bytes, path, options);
}

}  // namespace msmedcap::data
