#pragma once
/// The C allocator's handling of large blocks. glibc serves every block above its mmap threshold
/// (at most 32 MiB) with a fresh mmap and unmaps it on free, so a tensor of that size made and
/// dropped at every step (one attention matrix of a batch) is zero-filled page by page by the
/// kernel each time: measured here, extract-features over the demo's SAM encoder spent most of
/// its time in those page faults (3.2 million for 1 915 images, 61 images/s; 285 images/s with
/// freed blocks kept for reuse). docs/PERFORMANCE.md, "The C allocator and the BLAS threads".

#include <cstddef>
#include <string>

namespace msmedcap::core {

/// Keeps freed memory in the process for reuse: no mmap'd blocks, and the heap's free top is
/// given back to the system only beyond `trim_bytes`. Does nothing when the user set glibc's own
/// malloc settings (MALLOC_MMAP_MAX_, MALLOC_MMAP_THRESHOLD_, MALLOC_TRIM_THRESHOLD_,
/// GLIBC_TUNABLES with glibc.malloc) or outside glibc. Returns what it did, for the debug log.
std::string keep_freed_memory(size_t trim_bytes = size_t{1} << 30);

/// Makes the pages of a block that is about to be written in full present at once: the whole
/// 2 MiB pages inside it are asked for as transparent huge pages (MADV_HUGEPAGE) and every page is
/// allocated in one call (MADV_POPULATE_WRITE, Linux 5.14). Writing a fresh 1.2 GB of weights page
/// by page took about 300 000 page faults here, a third of a load's profile (docs/PERFORMANCE.md,
/// "Stop 37"). Blocks under 2 MiB, and kernels without these calls, are left alone: the block then
/// fills page by page as before.
void prefault_for_writing(void* data, size_t bytes);

}  // namespace msmedcap::core
