#!/usr/bin/env bash
# The clang sanitizer pass: builds the whole tree into build-fuzz with clang, libFuzzer,
# AddressSanitizer and UndefinedBehaviorSanitizer (-DMLA_FUZZ=ON, CPU only), runs every CTest test
# there except the process-level Python tests (so it is also the ASan/UBSan pass of the C++ test
# suite, the fuzzers' replay of their seed corpora and found-crash reproducers included; the
# Python tests drive the same binaries in the main build, and under the sanitizers they would
# double CI's time: FUZZ_CTEST_EXCLUDE= runs them too), then runs each tests/fuzz/*_fuzzer for
# ${FUZZ_SECONDS:-60} seconds on a copy of its seed corpus (with tests/fuzz/dict/<fuzzer>.dict as
# its libFuzzer dictionary where there is one).
#
# Usage: scripts/fuzz.sh [fuzzer ...]   (default: every fuzzer that was built)
# Environment: FUZZ_SECONDS (per fuzzer, default 60), FUZZ_CTEST=0 skips the test suite,
# BUILD_DIR (default build-fuzz), JOBS (build parallelism, default nproc).
# Exits non-zero if a test fails or a fuzzer finds a crash, a leak, a timeout (> 10 s for one
# input) or an input that needs more than 2 GiB; each reproducer is kept under
# $BUILD_DIR/fuzz-artifacts/<fuzzer>/ and its path printed, with the command that replays it.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
BUILD_DIR=${BUILD_DIR:-build-fuzz}
FUZZ_SECONDS=${FUZZ_SECONDS:-60}
FUZZ_CTEST=${FUZZ_CTEST:-1}
FUZZ_CTEST_EXCLUDE=${FUZZ_CTEST_EXCLUDE-^py_}

CC=clang CXX=clang++ BUILD_DIR="$BUILD_DIR" scripts/build.sh -DMLA_FUZZ=ON -DMLA_CUDA=OFF \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo

export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}

ctest_failed=0
if [ "$FUZZ_CTEST" != 0 ]; then
  # A failing test does not stop the fuzzing; both are reported at the end.
  ctest --test-dir "$BUILD_DIR" --output-on-failure -j "$(nproc)" \
    ${FUZZ_CTEST_EXCLUDE:+-E "$FUZZ_CTEST_EXCLUDE"} || ctest_failed=1
fi

if [ $# -gt 0 ]; then
  fuzzers=("$@")
else
  fuzzers=()
  for src in tests/fuzz/*_fuzzer.cc; do
    name=$(basename "$src" .cc)
    [ -x "$BUILD_DIR/tests/fuzz/$name" ] && fuzzers+=("$name")
  done
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
failed=()
summary=()
for name in "${fuzzers[@]}"; do
  bin="$ROOT/$BUILD_DIR/tests/fuzz/$name"
  if [ ! -x "$bin" ]; then
    echo "fuzz.sh: $name was not built" >&2
    failed+=("$name")
    continue
  fi
  artifacts="$ROOT/$BUILD_DIR/fuzz-artifacts/$name"
  rm -rf "$artifacts"
  mkdir -p "$artifacts" "$work/$name"
  if [ -d "tests/fuzz/corpus/$name" ]; then cp -r "tests/fuzz/corpus/$name/." "$work/$name/"; fi
  log="$ROOT/$BUILD_DIR/fuzz-artifacts/$name.log"
  extra=()
  if [ -f "tests/fuzz/dict/$name.dict" ]; then extra+=("-dict=$ROOT/tests/fuzz/dict/$name.dict"); fi
  echo "=== $name: ${FUZZ_SECONDS} s"
  set +e
  "$bin" -max_total_time="$FUZZ_SECONDS" -rss_limit_mb=2048 -timeout=10 \
    -artifact_prefix="$artifacts/" -print_final_stats=1 "${extra[@]}" "$work/$name" >"$log" 2>&1
  rc=$?
  set -e
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  cov=$(grep -oE 'cov: [0-9]+ ft: [0-9]+ corp: [0-9]+' "$log" | tail -1 || true)
  line="$name: ${execs:-?} runs, ${rate:-?} exec/s, ${cov:-no coverage line}"
  shopt -s nullglob
  found=("$artifacts"/*)
  shopt -u nullglob
  if [ "$rc" -ne 0 ] || [ "${#found[@]}" -gt 0 ]; then
    tail -n 60 "$log"
    echo "fuzz.sh: $name FAILED (exit $rc); log: $log"
    for f in "${found[@]}"; do
      echo "  reproducer: $f"
      echo "  replay:     $bin $f"
    done
    failed+=("$name")
    line+=" FAILED"
  else
    line+=" ok"
  fi
  summary+=("$line")
done

echo "=== fuzz summary (${FUZZ_SECONDS} s each)"
printf '  %s\n' "${summary[@]}"
if [ "$ctest_failed" != 0 ]; then
  echo "fuzz.sh: the test suite failed in $BUILD_DIR (see the ctest output above)" >&2
fi
if [ "${#failed[@]}" -gt 0 ]; then
  echo "fuzz.sh: failed: ${failed[*]}" >&2
fi
if [ "$ctest_failed" != 0 ] || [ "${#failed[@]}" -gt 0 ]; then
  exit 1
fi
