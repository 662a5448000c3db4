#include "msmedcap/core/allocator.h"

#include <cstdlib>
#include <cstring>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

namespace msmedcap::core {

std::string keep_freed_memory(size_t trim_bytes) {
#if defined(__GLIBC__)
  for (const char* name : {"MALLOC_MMAP_MAX_", "MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_"})
    if (std::getenv(name) != nullptr) return std::string("glibc malloc as ") + name + " sets it";
  const char* tunables = std::getenv("GLIBC_TUNABLES");
  if (tunables != nullptr && std::strstr(tunables, "glibc.malloc") != nullptr)
    return "glibc malloc as GLIBC_TUNABLES sets it";
  // A block too large for a thread's heap still falls back to mmap (glibc does so whenever a heap
  // cannot grow), so no allocation that succeeded before can fail now.
  const bool ok = mallopt(M_MMAP_MAX, 0) == 1 && mallopt(M_TRIM_THRESHOLD, static_cast<int>(trim_bytes)) == 1;
  return ok ? "glibc malloc keeps freed blocks (no mmap, trim above " + std::to_string(trim_bytes >> 20) + " MiB)"
            : "glibc malloc: mallopt refused the settings";
#else
  (void)trim_bytes;
  return "not glibc: the allocator is left as it is";
#endif
}

}  // namespace msmedcap::core
