#!/usr/bin/env bash
# Installs the dependencies, configures, builds and runs every test (ctest labels: unit, golden,
# integration-slow). Extra arguments go to ctest, e.g. `scripts/test.sh -L unit`, or
# `scripts/test.sh -LE slow` for the fast tier (unit and golden: 270 tests, about 150 s here).
#   BUILD_DIR   build directory (default: build)
#   TEST_VMEM_KB  address-space cap of every test process and what it runs (RLIMIT_AS, as
#                 `ulimit -v` sets; default 8000000, about 7.6 GiB; 0 = none): a test whose input
#                 makes the code allocate past its budgets (a pixel bomb, an endless file) fails
#                 instead of taking the machine. tests/test_main.cpp applies it (the Hub suite,
#                 which reserves full-size models without touching them, is exempt).
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)

./scripts/install_deps.sh

build_dir=${BUILD_DIR:-build}
generator=()
if command -v ninja >/dev/null 2>&1; then generator=(-G Ninja); fi
if [[ ! -f "$build_dir/CMakeCache.txt" ]]; then
  cmake -S . -B "$build_dir" "${generator[@]}" -DCMAKE_BUILD_TYPE=Release
fi
cmake --build "$build_dir" -j "$(nproc)"
echo "[test] built in $(( $(date +%s) - start )) s"

cd "$build_dir"
export MSMEDCAP_TEST_VMEM_KB=${TEST_VMEM_KB:-8000000}
echo "[test] address space of each test capped at $MSMEDCAP_TEST_VMEM_KB KB"
ctest --output-on-failure --timeout 900 -j "$(nproc)" "$@"
echo "[test] total $(( $(date +%s) - start )) s"
