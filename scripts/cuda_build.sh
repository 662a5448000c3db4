#!/usr/bin/env bash
# Builds msmedcap against the CUDA LibTorch of a GPU machine that has PyTorch but no package
# registry, then runs the CUDA-relevant tests and the benchmarks on the GPU.
#
#   scripts/cuda_build.sh fetch [DIR]   on a Debian 12 machine with apt: downloads the .deb files
#                                        of msmedcap's other dependencies (headers and the runtime
#                                        libraries they need, minus the base system) into DIR
#                                        (default .debs, which .git/info/exclude should ignore)
#   scripts/cuda_build.sh build [DIR]   on the GPU machine: unpacks DIR's .debs into a private
#                                        prefix (never into /), configures against
#                                        torch.utils.cmake_prefix_path, builds, runs the golden
#                                        tests (the CUDA parity test runs when a GPU is present)
#                                        and scripts/bench.sh with DEVICE=cuda
# Environment: BUILD_DIR (default build-cuda), PREFIX (default /tmp/msmedcap-deps), BENCH_DTYPE
# (generation: fp32 or bf16, default bf16), BENCH_PRECISION (training, default bf16).
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:-}
debs=${2:-.debs}

# Build-time packages (headers, CMake configs); their runtime libraries follow by dependency.
dev_packages=(
  libopencv-dev libopencv-core-dev libopencv-imgproc-dev libopencv-imgcodecs-dev
  libgdcm-dev libopenjp2-7-dev libcharls-dev libicu-dev libsentencepiece-dev nlohmann-json3-dev libspdlog-dev libfmt-dev
  libcli11-dev libstemmer-dev wordnet-base libgtest-dev libgmock-dev
)
# Present on any glibc system the GPU image runs; unpacking these would shadow its own.
base='^(libc6|libc6-dev|libgcc-s1|libstdc\+\+6|libstdc\+\+-12-dev|libgcc-12-dev|zlib1g|libssl3|libzstd1|liblzma5|libbz2-1.0|libffi8|libuuid1|libexpat1|libcrypt1|libselinux1|libpcre2-8-0|libgomp1|debconf|dpkg|perl-base|tar|gcc-12-base|libtinfo6|libdb5.3|libaudit1|libcap-ng0|libpam0g|libnsl2|libtirpc3|libgssapi-krb5-2|libkrb5-3|libk5crypto3|libkrb5support0|libcom-err2|libkeyutils1|libtirpc-common|libgmp10|libudev1|libsystemd0|libcap2|libgcrypt20|libgpg-error0|liblz4-1|libnuma1|linux-libc-dev|libcrypt-dev|libnsl-dev|libtirpc-dev|rpcsvc-proto|libgfortran5|libquadmath0|libopenblas0-pthread|libopenblas0|libblas3|liblapack3|libopenblas-pthread-dev|libopenblas-dev|libblas-dev|liblapack-dev|libtbb12|libtbb-dev|libtbbmalloc2|libtbbbind-2-5|libhwloc15|libvtk.*|python3.*|libpython3.*|default-jdk.*|openjdk.*|libgl.*|libegl.*|libx11.*|libxcb.*|libxext.*|libdrm.*|mesa.*|libvulkan.*)$'

case "$mode" in
  fetch)
    mkdir -p "$debs"
    # The dependency closure of the dev packages (Depends and PreDepends only), minus the base.
    mapfile -t closure < <(apt-cache depends --recurse --no-recommends --no-suggests --no-conflicts --no-breaks \
        --no-replaces --no-enhances "${dev_packages[@]}" | grep -v '^ ' | grep -v '^<' | sort -u | grep -Ev "$base")
    (cd "$debs" && apt-get download "${closure[@]}")
    echo "[cuda] $(ls "$debs"/*.deb | wc -l) packages, $(du -sh "$debs" | cut -f1) in $debs"
    ;;
  build)
    prefix=${PREFIX:-/tmp/msmedcap-deps}
    build_dir=${BUILD_DIR:-build-cuda}
    mkdir -p "$prefix"
    for f in "$debs"/*.deb; do dpkg -x "$f" "$prefix"; done
    torch_prefix=$(python3 -c 'import torch; print(torch.utils.cmake_prefix_path)')
    torch_lib=$(python3 -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "lib"))')
    export LD_LIBRARY_PATH="$prefix/usr/lib/x86_64-linux-gnu:$prefix/lib/x86_64-linux-gnu:$torch_lib:${LD_LIBRARY_PATH:-}"
    cmake -S . -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=Release \
      -DCMAKE_PREFIX_PATH="$torch_prefix;$prefix/usr;$prefix/usr/lib/x86_64-linux-gnu/cmake" \
      -DCMAKE_LIBRARY_PATH="$prefix/usr/lib/x86_64-linux-gnu" -DCMAKE_INCLUDE_PATH="$prefix/usr/include"
    cmake --build "$build_dir" -j "$(nproc)"
    python3 -c 'import torch; print("[cuda] torch", torch.__version__, "GPU:", torch.cuda.get_device_name(0))'
    (cd "$build_dir" && ctest --output-on-failure -L golden -j 4)
    BUILD_DIR="$build_dir" DEVICE=cuda DTYPE=${BENCH_DTYPE:-bf16} PRECISION=${BENCH_PRECISION:-bf16} \
      ./scripts/bench.sh --out "${BENCH_OUT:-$build_dir/bench-cuda.jsonl}"
    ;;
  *)
    echo "usage: scripts/cuda_build.sh fetch|build [DEB_DIR]" >&2
    exit 2
    ;;
esac
