#include "msmedcap/core/allocator.h"

#include <cstdint>
#include <cstdlib>
#include <cstring>

#if defined(__linux__)
#include <sys/mman.h>
#include <unistd.h>
#endif

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

void prefault_for_writing(void* data, size_t bytes) {
#if defined(__linux__)
  constexpr uintptr_t kHuge = uintptr_t{1} << 21;
  if (data == nullptr || bytes < kHuge) return;
  const auto begin = reinterpret_cast<uintptr_t>(data), end = begin + bytes;
  const uintptr_t huge_first = (begin + kHuge - 1) & ~(kHuge - 1), huge_last = end & ~(kHuge - 1);
  if (huge_last > huge_first) madvise(reinterpret_cast<void*>(huge_first), huge_last - huge_first, MADV_HUGEPAGE);
  const auto page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
  const uintptr_t first = (begin + page - 1) & ~(page - 1), last = end & ~(page - 1);
#if defined(MADV_POPULATE_WRITE)
  constexpr int kPopulateWrite = MADV_POPULATE_WRITE;
#else
  constexpr int kPopulateWrite = 23;  // Linux 5.14's value; older kernels answer EINVAL
#endif
  // Whole pages inside the block only: a page it shares with a neighbour is left to fault.
  if (last > first) madvise(reinterpret_cast<void*>(first), last - first, kPopulateWrite);
#else
  (void)data, (void)bytes;
#endif
}

}  // namespace msmedcap::core
