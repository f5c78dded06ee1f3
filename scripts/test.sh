#!/usr/bin/env bash
# Sets up, builds and runs every test: the main build's tests, then (scripts/fuzz.sh) the same
# tests once more in a clang AddressSanitizer/UndefinedBehaviorSanitizer build (CPU only) and a
# bounded run of every fuzzer (FUZZ_SECONDS each, default 60).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh
ctest --test-dir build --output-on-failure -j "$(nproc)"
scripts/fuzz.sh
