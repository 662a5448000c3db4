#!/usr/bin/env bash
# Stages what the LibTorch-only core build needs besides LibTorch into one folder, small enough
# to travel with the working tree to a machine where nothing can be installed (the lent GPU):
# the header-only libraries (nlohmann_json, spdlog and fmt used header-only, CLI11) and
# GoogleTest's source, copied from this machine's Debian packages (scripts/install_deps.sh
# installs them). The folder is git-ignored; configure with
#   -DMSMEDCAP_CORE_ONLY=ON -DMSMEDCAP_HEADER_ONLY_DEPS=ON -DMSMEDCAP_DEPS_DIR=<folder>
#
#   scripts/stage_core_deps.sh [FOLDER]     (default .deps/core)
set -euo pipefail
cd "$(dirname "$0")/.."
dest=${1:-.deps/core}
for need in /usr/include/nlohmann/json.hpp /usr/include/spdlog/spdlog.h /usr/include/fmt/format.h \
            /usr/include/CLI/CLI.hpp /usr/src/googletest/CMakeLists.txt; do
  [[ -e $need ]] || { echo "stage_core_deps: $need is missing (run scripts/install_deps.sh)" >&2; exit 1; }
done
rm -rf "$dest.tmp"
mkdir -p "$dest.tmp/include"
cp -a /usr/include/nlohmann /usr/include/spdlog /usr/include/fmt /usr/include/CLI "$dest.tmp/include/"
cp -a /usr/src/googletest "$dest.tmp/googletest"
rm -rf "$dest"
mv "$dest.tmp" "$dest"
echo "[stage_core_deps] $dest: $(du -sh "$dest" | cut -f1)"
