#pragma once
/// CPU threading: Debian's LibTorch starts with one intra-op thread, so msmedcap sets the count
/// explicitly (--threads, runtime.threads; 0 = all cores) and turns on flush-to-zero /
/// denormals-are-zero in every compute thread (tiny float32 values make matrix products ~50x
/// slower on CPU).

#include <cstdint>

namespace msmedcap::core {

/// Sets LibTorch's intra-op thread count (n <= 0: all cores) and flush-to-zero in the calling
/// thread and in every worker of the intra-op pool. Returns the count in force.
int configure_threads(int64_t n);

/// Turns on FTZ and DAZ in the calling thread (x86 MXCSR; no-op elsewhere).
void enable_flush_to_zero_this_thread();

/// True when the calling thread flushes denormals to zero (FTZ and DAZ both set).
bool flush_to_zero_enabled_this_thread();

/// For helper threads (data loading): flush-to-zero on, and LibTorch ops called from this thread
/// run single-threaded (the OpenMP thread count is per thread), so workers do not oversubscribe.
void configure_worker_thread();

/// Number of hardware threads (at least 1).
int hardware_threads();

}  // namespace msmedcap::core
