// core: checks, the optional components, progress display, threads and flush-to-zero, device parsing, attention compat.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <gtest/gtest.h>

#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <set>
#include <sstream>
#include <thread>

#include "msmedcap/core/allocator.h"
#include "msmedcap/core/atomic_file.h"
#include "msmedcap/core/check.h"
#include "msmedcap/core/compat.h"
#include "msmedcap/core/components.h"
#include "msmedcap/core/device.h"
#include "msmedcap/core/logging.h"
#include "msmedcap/core/progress.h"
#include "msmedcap/core/threads.h"
#include "test_utils.h"

namespace msmedcap::core {
namespace {

TEST(Check, ThrowsErrorWithConcatenatedMessage) {
  try {
    const int got = -1;
    MSMEDCAP_CHECK(got > 0, "train.lr: must be > 0, got ", got);
    FAIL() << "no throw";
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "train.lr: must be > 0, got -1");
  }
  EXPECT_NO_THROW(MSMEDCAP_CHECK(true, "unused"));
}

TEST(Components, ListedAsBuiltAndMissingOnesNamedInTheError) {
  // What the build has, as CMake configured it (MSMEDCAP_WITH_*): the list and the answers agree.
  const std::string built = components_built();
  int with = 0;
  for (Component c :
       {Component::kOpenCv, Component::kDicom, Component::kIcu, Component::kStemmer, Component::kSentencePiece}) {
    const std::string name = component_name(c);
    EXPECT_EQ(built_with(c), (" " + built + " ").find(" " + name + " ") != std::string::npos)
        << name << " in " << built;
    with += built_with(c);
    try {
      fail_built_without(c, "reading a thing");
      ADD_FAILURE() << "fail_built_without returned";
    } catch (const Error& e) {
      std::string option = name;
      for (char& ch : option) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
      EXPECT_EQ(std::string(e.what()), "built without " + name +
                                           " (reading a thing); reconfigure with -DMSMEDCAP_WITH_" + option +
                                           "=ON and the library installed");
    }
  }
  EXPECT_EQ(built == "none", with == 0);
}

TEST(Logging, ParsesLevelsAndRejectsUnknown) {
  EXPECT_EQ(parse_log_level("debug"), spdlog::level::debug);
  EXPECT_EQ(parse_log_level("off"), spdlog::level::off);
  EXPECT_THROW(parse_log_level("verbose"), Error);
}

TEST(Progress, StatusShowsCountRateAndEta) {
  double t = 0;
  std::ostringstream out;
  ProgressOptions options;
  options.out = &out;
  options.interactive = 0;
  options.interval_s = 10;
  options.clock = [&t] { return t; };
  Progress progress("train", 10, options);
  t = 2.0;
  progress.advance(5);  // 2.5 it/s, 5 left -> 2 s
  EXPECT_EQ(progress.status(), "5/10 2.5 it/s ETA 00:02");
  EXPECT_EQ(out.str(), "");  // not due yet (interval 10 s)
  t = 12.0;
  progress.advance(1);
  EXPECT_EQ(out.str(), "[train] 6/10 0.5 it/s ETA 00:08\n");
  progress.finish();
  EXPECT_NE(out.str().find("[train] done 6 it in 00:12 (0.5 it/s)"), std::string::npos) << out.str();
}

TEST(Progress, InteractiveModeRedrawsOneLine) {
  double t = 0;
  std::ostringstream out;
  ProgressOptions options;
  options.out = &out;
  options.interactive = 1;
  options.unit = "img";
  options.clock = [&t] { return t; };
  {
    Progress progress("caption", 0, options);
    t = 1.0;
    progress.advance(4);
  }
  EXPECT_EQ(out.str().rfind("\r\033[K[caption] 4 4.0 img/s", 0), 0u) << out.str();
  EXPECT_EQ(out.str().back(), '\n');
}

TEST(Progress, FormatsDurations) {
  EXPECT_EQ(format_duration(0), "00:00");
  EXPECT_EQ(format_duration(61), "01:01");
  EXPECT_EQ(format_duration(3725), "1:02:05");
  EXPECT_EQ(format_duration(-1), "--:--");
}

TEST(Threads, SetsTheCountAndFlushToZeroInEveryWorker) {
  EXPECT_EQ(configure_threads(2), 2);
  EXPECT_TRUE(flush_to_zero_enabled_this_thread());
  std::mutex m;
  std::set<std::thread::id> threads;
  std::atomic<int> without_ftz{0};
  at::parallel_for(0, 4096, 1, [&](int64_t, int64_t) {
    if (!flush_to_zero_enabled_this_thread()) ++without_ftz;
    std::lock_guard<std::mutex> lock(m);
    threads.insert(std::this_thread::get_id());
  });
  EXPECT_EQ(without_ftz.load(), 0);
  EXPECT_GE(threads.size(), 1u);
  // A denormal input is treated as zero (DAZ) by work spread over the pool.
  auto x = at::full({1 << 18}, 1e-40f);
  EXPECT_EQ((x * 3.0f).count_nonzero().item<int64_t>(), 0);
  configure_threads(0);
}

/// Minor page faults of this thread while a block of `bytes` is made, written and freed twice
/// (the second round is the one counted: does the freed block come back without new pages?).
long faults_of_second_round(size_t bytes) {
  static void* volatile escaped = nullptr;  // the block escapes: the compiler keeps malloc and free
  auto round = [bytes] {
    auto* p = static_cast<volatile char*>(std::malloc(bytes));
    escaped = const_cast<char*>(p);
    for (size_t i = 0; i < bytes; i += 1024) p[i] = 1;  // every page written
    std::free(escaped);
  };
  round();
  rusage before{}, after{};
  getrusage(RUSAGE_THREAD, &before);
  round();
  getrusage(RUSAGE_THREAD, &after);
  return after.ru_minflt - before.ru_minflt;
}

TEST(Allocator, FreedLargeBlocksAreReusedWithoutNewPages) {
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__) || !defined(__GLIBC__)
  GTEST_SKIP() << "the sanitizers' allocators replace glibc's";
#endif
  if (std::getenv("MALLOC_MMAP_MAX_") != nullptr || std::getenv("GLIBC_TUNABLES") != nullptr)
    GTEST_SKIP() << "the environment sets glibc's malloc itself";
  const size_t bytes = size_t{48} << 20;  // above glibc's largest mmap threshold (32 MiB)
  const long pages = static_cast<long>(bytes / static_cast<size_t>(sysconf(_SC_PAGESIZE)));
  // glibc's default: the block is mmap'd afresh and every page faults again.
  EXPECT_GT(faults_of_second_round(bytes), pages / 2);
  const std::string what = keep_freed_memory();
  EXPECT_NE(what.find("keeps freed blocks"), std::string::npos) << what;
  EXPECT_LT(faults_of_second_round(bytes), pages / 20);
}

/// Minor page faults of this thread while `bytes` of a fresh mmap'd block are written, with or
/// without prefault_for_writing first (which is not counted: its faults are its own call's).
long faults_writing_fresh_block(size_t bytes, bool prefault) {
  void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  EXPECT_NE(p, MAP_FAILED);
  if (prefault) prefault_for_writing(p, bytes);
  rusage before{}, after{};
  getrusage(RUSAGE_THREAD, &before);
  auto* c = static_cast<volatile char*>(p);
  for (size_t i = 0; i < bytes; i += 1024) c[i] = 1;
  getrusage(RUSAGE_THREAD, &after);
  munmap(p, bytes);
  return after.ru_minflt - before.ru_minflt;
}

TEST(Allocator, PrefaultedBlockIsWrittenWithoutPageFaults) {
  const size_t bytes = size_t{16} << 20;
  const long pages = static_cast<long>(bytes / static_cast<size_t>(sysconf(_SC_PAGESIZE)));
  const long plain = faults_writing_fresh_block(bytes, false);
  if (plain < pages / 20) GTEST_SKIP() << "the system gives this block huge pages by itself (" << plain << " faults)";
  // Kernels before 5.14 answer MADV_POPULATE_WRITE with EINVAL: the block then faults as before.
  utsname u{};
  ASSERT_EQ(uname(&u), 0);
  int major = 0, minor = 0;
  std::sscanf(u.release, "%d.%d", &major, &minor);
  if (major < 5 || (major == 5 && minor < 14)) GTEST_SKIP() << "kernel " << u.release << " has no MADV_POPULATE_WRITE";
  EXPECT_LT(faults_writing_fresh_block(bytes, true), pages / 100) << "without: " << plain;
  // Small blocks and null are left alone (and do not crash).
  prefault_for_writing(nullptr, bytes);
  char small[64];
  prefault_for_writing(small, sizeof(small));
}

TEST(Threads, ZeroMeansAllCores) { EXPECT_EQ(configure_threads(0), hardware_threads()); }

TEST(Device, ParsesCpuAndRejectsMalformedNames) {
  EXPECT_EQ(parse_device("cpu").type(), c10::kCPU);
  EXPECT_THROW(parse_device("gpu"), Error);
  EXPECT_THROW(parse_device("cpu:1"), Error);
  EXPECT_THROW(parse_device("cuda:x"), Error);
}

TEST(Device, CudaWithoutCudaGivesAClearError) {
  if (cuda_available()) GTEST_SKIP() << "CUDA present";
  try {
    parse_device("cuda:0");
    FAIL() << "no throw";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("CUDA is not available"), std::string::npos) << e.what();
  }
}

TEST(Compat, AttentionMatchesExplicitSoftmax) {
  at::manual_seed(0);
  const auto q = at::randn({2, 3, 5, 8}, at::kDouble);
  const auto k = at::randn({2, 3, 7, 8}, at::kDouble);
  const auto v = at::randn({2, 3, 7, 4}, at::kDouble);
  const auto mask = at::randn({2, 1, 5, 7}, at::kDouble);
  auto reference = [&](bool causal) {
    auto s = at::matmul(q, k.transpose(-2, -1)) / std::sqrt(8.0) + mask;
    if (causal) {
      for (int64_t i = 0; i < 5; ++i) {
        for (int64_t j = 0; j < 7; ++j) {
          if (j > i + 2) s.select(2, i).select(2, j).fill_(-INFINITY);
        }
      }
    }
    return at::matmul(at::softmax(s, -1), v);
  };
  EXPECT_TRUE(at::allclose(core::scaled_dot_product_attention(q, k, v, mask), reference(false), 1e-10, 1e-12));
  EXPECT_TRUE(at::allclose(core::scaled_dot_product_attention(q, k, v, mask, true), reference(true), 1e-10, 1e-12));
  EXPECT_TRUE(at::allclose(attention_math(q, k, v, mask, true), reference(true), 1e-10, 1e-12));
  // Explicit scale.
  const auto scaled = core::scaled_dot_product_attention(q, k, v, {}, false, 0.5);
  const auto expected = at::matmul(at::softmax(at::matmul(q, k.transpose(-2, -1)) * 0.5, -1), v);
  EXPECT_TRUE(at::allclose(scaled, expected, 1e-10, 1e-12));
}

TEST(Compat, FusedAttentionEqualsTheExplicitPath) {
  // LibTorch 2.x: the fused kernel against the explicit math, in float32 as the models run it:
  // padding masks, causal with more keys than queries (a KV cache), no mask, and SAM's layout
  // ([B*H, N, Dh] with its relative-position bias as an additive [B*H, N, N] mask).
  if (!kHasFusedAttention) GTEST_SKIP() << "LibTorch " << torch_version() << " has no fused attention";
  at::manual_seed(0);
  const auto q = at::randn({2, 4, 5, 16}), k = at::randn({2, 4, 9, 16}), v = at::randn({2, 4, 9, 16});
  const auto mask = at::randn({2, 1, 5, 9});
  for (const bool causal : {false, true}) {
    for (const bool masked : {false, true}) {
      const auto m = masked ? mask : at::Tensor();
      EXPECT_TRUE(at::allclose(core::scaled_dot_product_attention(q, k, v, m, causal),
                               attention_math(q, k, v, m, causal), 1e-5, 1e-6))
          << "causal " << causal << ", masked " << masked;
    }
  }
  const auto sq = at::randn({6, 64, 8}), sk = at::randn({6, 64, 8}), sv = at::randn({6, 64, 8});
  const auto bias = at::randn({6, 64, 64});
  EXPECT_TRUE(
      at::allclose(core::scaled_dot_product_attention(sq, sk, sv, bias), attention_math(sq, sk, sv, bias), 1e-5, 1e-6));
}

TEST(AtomicFile, CommitReplacesAndAbandonLeavesNothing) {
  msmedcap::testing::TempDir dir;
  const std::string path = dir.file("f.txt");
  write_file_atomic(path, "old");
  {
    AtomicFile f(path);
    f.write("new content");
    // Destroyed without commit: the old file stays, no temporary is left behind.
  }
  EXPECT_EQ(read_file(path), "old");
  size_t entries = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir.path())) {
    (void)e;
    ++entries;
  }
  EXPECT_EQ(entries, 1u);
  write_file_atomic(path, "new");
  EXPECT_EQ(read_file(path), "new");
}

TEST(AtomicFile, UnwritableDirectoryNamesThePath) {
  try {
    write_file_atomic("/nonexistent-dir/x.json", "x");
    FAIL() << "no throw";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent-dir/x.json"), std::string::npos);
  }
}

}  // namespace
}  // namespace msmedcap::core
