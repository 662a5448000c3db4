#!/usr/bin/env bash
# Builds everything with AddressSanitizer and UndefinedBehaviorSanitizer (the CMake option
# MSMEDCAP_SANITIZE) and runs the unit suite (the fuzz regression inputs among it) and the fault
# tests under them. Any sanitizer report fails its test. LibTorch itself is not instrumented.
# SentencePiece is left out: the sanitizer refuses the bridge's RTLD_DEEPBIND.
#
# Usage: scripts/sanitize.sh [extra ctest args]
# Environment: SANITIZE_BUILD (default build-sanitize), SANITIZERS (default address,undefined),
#   SKIP_INSTALL=1.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
[[ ${SKIP_INSTALL:-0} == 1 ]] || ./scripts/install_deps.sh
build=${SANITIZE_BUILD:-build-sanitize}
generator=()
if command -v ninja >/dev/null 2>&1; then generator=(-G Ninja); fi
cmake -S . -B "$build" "${generator[@]}" -DCMAKE_BUILD_TYPE=Release \
  -DMSMEDCAP_SANITIZE="${SANITIZERS:-address,undefined}" > /dev/null
cmake --build "$build" -j "$(nproc)"
echo "[sanitize] built in $(( $(date +%s) - start )) s"

# (leak checking: see docs/RELIABILITY.md)
export ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
cd "$build"
ctest --output-on-failure --timeout 1800 -j "$(nproc)" -L unit -E 'SentencePiece' "$@"
ctest --output-on-failure --timeout 1800 -j "$(nproc)" -R '^Faults\.' "$@"
echo "[sanitize] total $(( $(date +%s) - start )) s"
