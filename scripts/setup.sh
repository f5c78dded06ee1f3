#!/usr/bin/env bash
# Installs every build and test dependency of mlaserve from Debian's packages (needs root).
set -euo pipefail
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO=sudo
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends \
  build-essential cmake ninja-build pkg-config git clang libclang-rt-14-dev \
  libabsl-dev nlohmann-json3-dev libgtest-dev libgmock-dev libbenchmark-dev \
  libgrpc++-dev libprotobuf-dev protobuf-compiler protobuf-compiler-grpc \
  libgloo-dev libcpp-httplib-dev libre2-dev \
  python3 python3-numpy python3-grpcio python3-protobuf \
  iproute2 procps openssl libssl-dev
# The HTTP and second-language tests run Node.js clients (openai, @grpc/grpc-js, installed by the
# tests with npm ci from tests/npm). Machines of this project's image ship Node.js 20; elsewhere
# Debian's packages serve.
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  $SUDO apt-get install -y -q --no-install-recommends nodejs npm
fi
