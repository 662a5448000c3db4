#!/usr/bin/env bash
# Installs every Debian 12 package that msmedcap's build, tests and demo need. Idempotent: when
# all packages are present it changes nothing and touches no network.
set -euo pipefail

packages=(
  cmake ninja-build g++ pkg-config
  libtorch-dev            # LibTorch 1.13 (CPU), its CMake config and c10d headers
  libgloo-dev             # c10d's Gloo headers (CPU distributed)
  libopenblas0-pthread    # fast BLAS for CPU matrix products (else the reference BLAS is used)
  libopenblas0-openmp     # its OpenMP build, which msmedcap links: it shares LibTorch's threads
  libopencv-dev           # image decoding (PNG, JPEG, TIFF, BMP) and resizing
  libgdcm-dev             # DICOM datasets and native pixel data; its libjpeg builds for JPEG
  libopenjp2-7-dev libcharls-dev   # JPEG 2000 and JPEG-LS pixel data (decoded by msmedcap)
  libicu-dev              # Unicode categories and NFD for the WordPiece and BPE tokenizers
  libsentencepiece-dev sentencepiece   # SentencePiece library (bridge) and spm_train/spm_encode
  nlohmann-json3-dev libspdlog-dev libfmt-dev libcli11-dev
  libstemmer-dev          # Snowball English stemmer (METEOR's stem module)
  wordnet-base            # WordNet 3.0 (METEOR's synonym module)
  libgtest-dev libgmock-dev
  python3-torch           # scripts/convert_pth.py (.pth -> safetensors) and its test
  clang-format            # scripts/format.sh and the suite's layout check (.clang-format)
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
if [[ ${#missing[@]} -eq 0 ]]; then
  echo "[install] all ${#packages[@]} Debian packages present"
  exit 0
fi

sudo=""
if [[ $(id -u) -ne 0 ]]; then sudo="sudo"; fi
echo "[install] installing: ${missing[*]}"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
echo "[install] done"
