#!/usr/bin/env bash
# Installs the dependencies, configures, builds and runs every test (ctest labels: unit, golden,
# integration). Extra arguments go to ctest, e.g. `scripts/test.sh -L unit`.
#   BUILD_DIR   build directory (default: build)
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
ctest --output-on-failure --timeout 900 -j "$(nproc)" "$@"
echo "[test] total $(( $(date +%s) - start )) s"
