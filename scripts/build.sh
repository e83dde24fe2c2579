#!/usr/bin/env bash
# Configures and builds halo with Ninja into ${HALO_BUILD_DIR:-build}.
# Extra arguments are passed to cmake (e.g. -DHALO_ENABLE_COMPILER=OFF).
set -euo pipefail
cd "$(dirname "$0")/.."
build="${HALO_BUILD_DIR:-build}"
launcher=()
command -v ccache >/dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
cmake -G Ninja -S . -B "$build" -DCMAKE_BUILD_TYPE=Release "${launcher[@]}" "$@" >/dev/null
ninja -C "$build"
