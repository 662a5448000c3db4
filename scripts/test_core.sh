#!/usr/bin/env bash
# The LibTorch-only core build and its tests: every optional component left out (OpenCV, DICOM,
# ICU, libstemmer, sentencepiece; include/msmedcap/core/components.h), header-only dependencies
# and GoogleTest from source staged by scripts/stage_core_deps.sh, then ctest. What needs a
# missing component is left out of the suite or skips; the rest must pass.
#   BUILD_DIR  build directory (default build-core); extra arguments go to ctest
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
build_dir=${BUILD_DIR:-build-core}
deps=${DEPS_DIR:-$PWD/.deps/core}
[[ -f $deps/include/nlohmann/json.hpp ]] || ./scripts/stage_core_deps.sh "$deps"
generator=()
if command -v ninja >/dev/null 2>&1; then generator=(-G Ninja); fi
cmake -S . -B "$build_dir" "${generator[@]}" -DCMAKE_BUILD_TYPE=Release -DMSMEDCAP_CORE_ONLY=ON \
  -DMSMEDCAP_HEADER_ONLY_DEPS=ON -DMSMEDCAP_DEPS_DIR="$deps" > /dev/null
cmake --build "$build_dir" -j "$(nproc)"
echo "[test_core] built in $(( $(date +%s) - start )) s: $("$build_dir/msmedcap" --version)"
cd "$build_dir"
export MSMEDCAP_TEST_VMEM_KB=${TEST_VMEM_KB:-8000000}
ctest --output-on-failure --timeout 900 -j "$(nproc)" "$@"
echo "[test_core] total $(( $(date +%s) - start )) s"
