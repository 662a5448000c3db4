#!/usr/bin/env bash
# Formats the project's C++ sources with .clang-format (Debian 12's clang-format 14; another
# version may lay some lines out differently).
#   scripts/format.sh           rewrite every file that is not formatted
#   scripts/format.sh --check   change nothing; list the files that are not formatted and exit 1
#                               (exit 77, a skip to ctest, with a clang-format other than 14)
set -euo pipefail
cd "$(dirname "$0")/.."
clang_format=${CLANG_FORMAT:-clang-format}
if ! command -v "$clang_format" >/dev/null; then
  echo "format: $clang_format not found (scripts/install_deps.sh installs it)" >&2
  [[ "${1:-}" == "--check" ]] && exit 77
  exit 2
fi
version=$("$clang_format" --version | sed -n 's/.*version \([0-9]*\)\..*/\1/p')
if [[ "${1:-}" == "--check" && "$version" != 14 ]]; then
  # Other versions lay some lines out differently: the check would fail on formatted files.
  echo "format: skipped, clang-format $version is not 14 (the version the layout is checked with)"
  exit 77
fi
# The tracked files (a copy that is no git checkout: every file under the same folders).
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  mapfile -t files < <(git ls-files 'src/*.cpp' 'src/*.h' 'include/*.h' 'tests/*.cpp' 'tests/*.h' \
                         'third_party/sentencepiece_bridge/*.cpp' 'third_party/sentencepiece_bridge/*.h')
else
  mapfile -t files < <(find src include tests third_party/sentencepiece_bridge -name '*.cpp' -o -name '*.h' | sort)
fi
if [[ "${1:-}" == "--check" ]]; then
  bad=0
  for f in "${files[@]}"; do
    if ! "$clang_format" --style=file "$f" | cmp -s - "$f"; then
      echo "format: $f is not formatted (scripts/format.sh rewrites it)"
      bad=1
    fi
  done
  [[ $bad == 0 ]] && echo "format: ${#files[@]} files formatted"
  exit $bad
fi
"$clang_format" --style=file -i "${files[@]}"
