#!/usr/bin/env bash
# Installs the Debian 12 packages halo builds with, if any are missing.
# The CUDA 13 toolkit is expected at /usr/local/cuda (or $CUDA_HOME); it is not
# an apt package on Debian 12, so its absence is reported, not fixed.
set -euo pipefail

packages=(cmake ninja-build g++ python3 libfmt-dev nlohmann-json3-dev libgtest-dev
          libmlir-19-dev mlir-19-tools llvm-19-dev llvm-19-tools)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "halo: installing ${missing[*]}"
  sudo_cmd=""
  [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

cuda_home="${CUDA_HOME:-/usr/local/cuda}"
if [ ! -f "$cuda_home/include/nvrtc.h" ]; then
  echo "halo: CUDA toolkit not found at $cuda_home (need CUDA 13 headers, NVRTC, cuBLASLt);" \
       "hint: install it or set CUDA_HOME" >&2
  exit 1
fi
