#!/usr/bin/env bash
# The main job: make the tiny synthetic checkpoint and generate tokens from it.
# REQUIRES: scripts/build.sh has built ${BUILD_DIR:-build}.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}
CKPT=${CKPT:-$BUILD_DIR/demo/tiny}
"$BUILD_DIR"/tools/mla-make-checkpoint --preset=tiny --seed=1 --out="$CKPT"
"$BUILD_DIR"/tools/mla-generate --checkpoint="$CKPT" --prompt=5,6,7,8 --max_tokens=24 --ignore_eos
