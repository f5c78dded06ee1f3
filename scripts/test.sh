#!/usr/bin/env bash
# Sets up, builds and runs every test: the main build's tests, then the same tests once more
# under AddressSanitizer/UndefinedBehaviorSanitizer (a CPU-only build).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh
ctest --test-dir build --output-on-failure -j "$(nproc)"
BUILD_DIR=build-asan scripts/build.sh -DMLA_CUDA=OFF -DMLA_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug
ctest --test-dir build-asan --output-on-failure -j "$(nproc)"
