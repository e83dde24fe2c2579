#!/usr/bin/env bash
# Installs dependencies, builds, and runs every test (GoogleTest + lit) with ctest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
bash scripts/build.sh
ctest --test-dir "${HALO_BUILD_DIR:-build}" --output-on-failure -j2
