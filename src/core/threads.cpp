#include "msmedcap/core/threads.h"

#include <ATen/Parallel.h>
#include <omp.h>

#include <thread>

#if defined(__x86_64__) || defined(__i386__)
#include <xmmintrin.h>
#define MSMEDCAP_HAS_MXCSR 1
#endif

namespace msmedcap::core {

namespace {
#ifdef MSMEDCAP_HAS_MXCSR
constexpr unsigned kFlushToZero = 0x8000;       // MXCSR.FTZ
constexpr unsigned kDenormalsAreZero = 0x0040;  // MXCSR.DAZ
#endif
}  // namespace

void enable_flush_to_zero_this_thread() {
#ifdef MSMEDCAP_HAS_MXCSR
  _mm_setcsr(_mm_getcsr() | kFlushToZero | kDenormalsAreZero);
#endif
}

bool flush_to_zero_enabled_this_thread() {
#ifdef MSMEDCAP_HAS_MXCSR
  const unsigned csr = _mm_getcsr();
  return (csr & kFlushToZero) != 0 && (csr & kDenormalsAreZero) != 0;
#else
  return false;
#endif
}

void configure_worker_thread() {
  enable_flush_to_zero_this_thread();
  omp_set_num_threads(1);
}

int hardware_threads() {
  const unsigned n = std::thread::hardware_concurrency();
  return n == 0 ? 1 : static_cast<int>(n);
}

int configure_threads(int64_t n) {
  const int count = n <= 0 ? hardware_threads() : static_cast<int>(n);
  // New threads inherit the creator's MXCSR on Linux, so set it here first ...
  enable_flush_to_zero_this_thread();
  at::set_num_threads(count);
  // ... and in every thread of the OpenMP team that runs LibTorch's intra-op work, which may
  // already exist (created before this call, with the old flags).
#pragma omp parallel num_threads(count)
  { enable_flush_to_zero_this_thread(); }
  return at::get_num_threads();
}

}  // namespace msmedcap::core
