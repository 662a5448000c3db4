// GoogleTest entry point shared by the unit, golden and integration suites: sets the thread
// count (Debian's LibTorch starts with one) and flush-to-zero like the msmedcap binary does, and
// the memory cap of scripts/test.sh.
#include <gtest/gtest.h>

#include <sys/resource.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "msmedcap/core/threads.h"

namespace {

/// MSMEDCAP_TEST_VMEM_KB (scripts/test.sh sets it): the process's address space is capped there,
/// and so is every msmedcap it starts, so a test whose input makes the code allocate past its
/// budgets (a pixel bomb, an endless file) fails instead of taking the machine. The Hub suite is
/// exempt: it builds full-size models whose parameters are reserved but never touched, which
/// takes address space (about 11 GB for MSMedCap with OPT-2.7B) and no memory.
void cap_address_space() {
  const char* kb = std::getenv("MSMEDCAP_TEST_VMEM_KB");
  if (kb == nullptr || std::string(kb).empty() || std::string(kb) == "0") return;
  const std::string filter = ::testing::GTEST_FLAG(filter);
  if (filter.rfind("Hub.", 0) == 0) return;
  const rlim_t bytes = static_cast<rlim_t>(std::strtoull(kb, nullptr, 10)) * 1024;
  const rlimit limit{bytes, bytes};
  if (setrlimit(RLIMIT_AS, &limit) != 0) std::perror("setrlimit(RLIMIT_AS)");
}

}  // namespace

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  cap_address_space();
  msmedcap::core::configure_threads(0);
  return RUN_ALL_TESTS();
}
