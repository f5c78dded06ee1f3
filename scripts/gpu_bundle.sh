#!/usr/bin/env bash
# Gathers, on a Debian 12 machine with package access, the Debian packages that a GPU host
# lacks to build and test mlaserve, into .offline/debs (git-ignored). Carry .offline to the GPU
# host; scripts/gpu_test.sh unpacks the packages into .offline/prefix there (no root, no apt).
#
# The GPU host we target: Ubuntu 24.04 with CUDA 13 (nvcc, cuBLASLt, compute-sanitizer), cmake,
# ninja, g++ 13, NCCL, Python with PyTorch; no gRPC, Abseil, protobuf dev files, Gloo, gtest,
# nlohmann-json, pkg-config. Debian 12's libraries need glibc >= 2.36 and libstdc++ from g++ 12;
# Ubuntu 24.04's glibc 2.39 and g++ 13 libstdc++ are newer, so the .so files load there, and the
# static gtest/gmock link with g++ 13 (same libstdc++ ABI). docs/GPU.md says how to use this.
#
# Usage: scripts/gpu_bundle.sh            (re-running replaces the bundle)
set -euo pipefail
cd "$(dirname "$0")/.."
DEST=.offline/debs

PACKAGES=(
  # gRPC and protobuf (protos/): headers, libraries, protoc and the C++ plugin
  libgrpc++-dev libgrpc++1.51 libgrpc29 libgrpc-dev protobuf-compiler-grpc
  libprotobuf-dev libprotobuf32 libprotobuf-lite32 libprotoc-dev libprotoc32 protobuf-compiler
  # gRPC's own dependencies, found by its CMake config (find_dependency)
  libre2-9 libre2-dev libc-ares2 libc-ares-dev libssl-dev libssl3 zlib1g-dev zlib1g
  # Abseil, JSON, tests, benchmarks
  libabsl-dev libabsl20220623 nlohmann-json3-dev libgtest-dev libgmock-dev googletest
  libbenchmark-dev libbenchmark1debian
  # Gloo (CPU collectives) and what it links
  libgloo0 libgloo-dev libhiredis0.14 libhiredis-dev libibverbs1 libibverbs-dev
  libnl-3-200 libnl-3-dev libnl-route-3-200 libnl-route-3-dev
  # HTTP front end (scripts/setup.sh installs it)
  libcpp-httplib-dev libcpp-httplib0.11 libbrotli-dev libbrotli1
  # pkg-config, which gRPC's CMake config uses to find re2 and c-ares
  pkgconf pkgconf-bin libpkgconf3
)

if [ "$(id -u)" -eq 0 ]; then
  apt-get update -q
else
  echo "not root: skipping apt-get update (package lists may be stale)"
fi
rm -rf "$DEST"
mkdir -p "$DEST"
(cd "$DEST" && apt-get download "${PACKAGES[@]}")

# A manifest of what was gathered, for docs and for the GPU host's log.
{
  echo "# mlaserve GPU bundle, made $(date -u +%Y-%m-%dT%H:%MZ) on $(. /etc/os-release && echo "$PRETTY_NAME")"
  for deb in "$DEST"/*.deb; do
    dpkg-deb --show --showformat='${Package} ${Version}\n' "$deb"
  done
} > "$DEST/MANIFEST"
echo "$(ls "$DEST"/*.deb | wc -l) packages, $(du -sh "$DEST" | cut -f1) in $DEST"
