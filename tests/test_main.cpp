// GoogleTest entry point shared by the unit, golden and integration suites: sets the thread
// count (Debian's LibTorch starts with one) and flush-to-zero like the msmedcap binary does.
#include <gtest/gtest.h>

#include "msmedcap/core/threads.h"

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  msmedcap::core::configure_threads(0);
  return RUN_ALL_TESTS();
}
