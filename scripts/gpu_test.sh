#!/usr/bin/env bash
# Runs ON a GPU host without internet: unpacks the bundle of scripts/gpu_bundle.sh
# (.offline/debs) into .offline/prefix, configures and builds the GPU tests and the decode
# benchmark, runs the tests, runs compute-sanitizer (memcheck, racecheck) on them, and runs the
# benchmark against PyTorch. Logs go to $OUT if set, else
# .offline/logs; at most 8 files: env.log build.log sass.txt ctest.log sanitizer.log bench.log
# bench_ops.log summary.txt. The last lines printed are the summary.
#
# Environment knobs: BUILD_DIR (build-gpu), JOBS (nproc), MLA_BUILD_ALL=1 (build and ctest the
# whole project, not only tests/gpu), MLA_SKIP="sanitizer bench" (steps to skip),
# MLA_TEST_SEED (replay a test's random inputs), MLA_PREFIX (where to unpack), MLA_CMAKE_ARGS
# (more configure arguments; MLA_SKIP=build stops after configuring), MLA_GPU_TESTS="nccl rope"
# (build and run only the GPU tests whose names contain one of these words, no benchmark;
# "serving" selects the multi-process GPU serving test).
# Exit status: 0 when every step passed.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
OFF=$ROOT/.offline
PREFIX=${MLA_PREFIX:-$OFF/prefix}
LOG=${OUT:-$OFF/logs}
BUILD=${BUILD_DIR:-build-gpu}
JOBS=${JOBS:-$(nproc)}
SKIP=" ${MLA_SKIP:-} "
ARCH_LIB=lib/x86_64-linux-gnu
mkdir -p "$LOG"
SUMMARY=$LOG/summary.txt
: > "$SUMMARY"
FAILED=0

# record NAME STATUS SECONDS [NOTE]: one summary line per step.
record() {
  printf '%-28s %-6s %5ss  %s\n' "$1" "$2" "$3" "${4:-}" | tee -a "$SUMMARY"
  [ "$2" = ok ] || [ "$2" = skip ] || FAILED=1
}
# run_step NAME LOGFILE TIMEOUT CMD...: runs CMD with a time limit, appending to LOGFILE.
run_step() {
  local name=$1 logfile=$2 limit=$3; shift 3
  local t0=$SECONDS
  echo "===== $name: $*" >> "$logfile"
  timeout --kill-after=10 "$limit" "$@" >> "$logfile" 2>&1
  local rc=$?
  local status=ok
  [ $rc -eq 0 ] || status="rc=$rc"
  [ $rc -eq 124 ] && status=timeout
  record "$name" "$status" $((SECONDS - t0))
  return $rc
}

# ---- 1. What this host has.
{
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv 2>&1
  nvcc --version 2>&1 | tail -2
  cmake --version | head -1; g++ --version | head -1; ninja --version
  compute-sanitizer --version 2>&1 | tail -1
  python3 -c 'import torch; print("torch", torch.__version__)' 2>&1
  grep PRETTY_NAME /etc/os-release; ldd --version | head -1
  [ -f "$OFF/debs/MANIFEST" ] && head -1 "$OFF/debs/MANIFEST"
} > "$LOG/env.log" 2>&1
head -3 "$LOG/env.log" | tail -2

# ---- 2. Unpack the bundle into the prefix (once), relocating absolute paths into it.
unpack() {
  rm -rf "$PREFIX" && mkdir -p "$PREFIX" || return 1
  local deb
  for deb in "$OFF"/debs/*.deb; do
    if command -v dpkg-deb > /dev/null; then
      dpkg-deb -x "$deb" "$PREFIX" || return 1
    else  # a .deb is an ar archive holding data.tar.*
      local tmp; tmp=$(mktemp -d)
      (cd "$tmp" && ar x "$deb" && tar -xf data.tar.* -C "$PREFIX") || return 1
      rm -rf "$tmp"
    fi
  done
  # Absolute symlinks (libz.so -> /lib/...) point into the prefix instead.
  find "$PREFIX" -type l -lname '/*' | while read -r link; do
    ln -sfn "$PREFIX$(readlink "$link")" "$link"
  done
  # CMake package files and pkg-config files that name /usr or /lib absolutely (Gloo's
  # IMPORTED_LOCATION, the "/usr move" guards, prefix= lines) name the prefix instead.
  grep -rlE '"/(usr|lib)(/|")' --include='*.cmake' "$PREFIX" | xargs -r sed -i -E \
    "s#\"/usr/#\"$PREFIX/usr/#g; s#\"/usr\"#\"$PREFIX/usr\"#g; s#\"/lib/#\"$PREFIX/lib/#g"
  find "$PREFIX" -name '*.pc' | xargs -r sed -i -E "s#^([A-Za-z_]+)=/usr#\\1=$PREFIX/usr#"
  # Tools from the bundle run through wrappers that see its libraries; nothing else does.
  mkdir -p "$OFF/bin"
  local tool
  for tool in protoc grpc_cpp_plugin pkgconf; do
    cat > "$OFF/bin/$tool" <<WRAP
#!/bin/sh
LD_LIBRARY_PATH="$PREFIX/usr/$ARCH_LIB:$PREFIX/$ARCH_LIB:$PREFIX/usr/lib\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}" exec "$PREFIX/usr/bin/$tool" "\$@"
WRAP
    chmod +x "$OFF/bin/$tool"
  done
  touch "$PREFIX/.unpacked"
}
if [ -f "$PREFIX/.unpacked" ] && [ "$PREFIX/.unpacked" -nt "$OFF/debs/MANIFEST" ]; then
  record unpack ok 0 "(already)"
else
  t0=$SECONDS
  if [ ! -f "$OFF/debs/MANIFEST" ]; then
    record unpack missing 0 "no $OFF/debs: run scripts/gpu_bundle.sh where apt works"
  elif unpack >> "$LOG/build.log" 2>&1; then
    record unpack ok $((SECONDS - t0)) "$(ls "$OFF"/debs/*.deb | wc -l) packages"
  else
    record unpack failed $((SECONDS - t0))
  fi
fi

# ---- 3. Configure and build. Programs find the bundle's libraries through DT_RPATH
# (--disable-new-dtags): unlike DT_RUNPATH it also serves the libraries' own dependencies
# (libabsl_base.so -> libabsl_spinlock_wait.so), so no global LD_LIBRARY_PATH is needed.
PKG_CONFIG=$(command -v pkg-config || echo "$OFF/bin/pkgconf")
export PKG_CONFIG_PATH="$PREFIX/usr/$ARCH_LIB/pkgconfig:$PREFIX/usr/share/pkgconfig:$PREFIX/usr/lib/pkgconfig"
run_step configure "$LOG/build.log" 120 cmake -S . -B "$BUILD" -G Ninja \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMLA_CUDA=ON \
  -DCMAKE_CUDA_COMPILER="$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)" \
  -DCMAKE_PREFIX_PATH="$PREFIX/usr" \
  -DCMAKE_POLICY_VERSION_MINIMUM=3.5 \
  -DCMAKE_EXE_LINKER_FLAGS=-Wl,--disable-new-dtags \
  -DPKG_CONFIG_EXECUTABLE="$PKG_CONFIG" \
  -DProtobuf_PROTOC_EXECUTABLE="$OFF/bin/protoc" \
  -DProtobuf_INCLUDE_DIR="$PREFIX/usr/include" \
  -DProtobuf_LIBRARY="$PREFIX/usr/$ARCH_LIB/libprotobuf.so" ${MLA_CMAKE_ARGS:-}
if [[ "$SKIP" == *" build "* ]]; then cat "$SUMMARY"; exit $FAILED; fi

# The GPU tests: tests/gpu/*_test.cc, and the GPU serving test (tests/integration/
# test_serving_gpu.py: real coordinator and worker processes, NCCL between GPUs), which needs
# the binaries below.
GPU_TESTS="$(for f in tests/gpu/*_test.cc; do basename "$f" .cc; done | tr '\n' ' ')"
GPU_TESTS="$GPU_TESTS py_test_serving_gpu"
SERVING_TARGETS="mla-coordinator mla-worker mla-generate mla-client mla-make-checkpoint"
if [ -n "${MLA_GPU_TESTS:-}" ]; then
  GPU_TESTS=$(for t in $GPU_TESTS; do
    for w in $MLA_GPU_TESTS; do [[ $t == *"$w"* ]] && echo "$t" && break; done
  done | tr '\n' ' ')
fi
CTEST_RE="^($(echo $GPU_TESTS | tr ' ' '|'))\$"
TARGETS=$(for t in $GPU_TESTS; do [[ $t == py_* ]] || echo "$t"; done | tr '\n' ' ')
[[ " $GPU_TESTS " == *" py_test_serving_gpu "* ]] && TARGETS="$TARGETS $SERVING_TARGETS"
[ -f bench/mla_decode_bench.cu ] && [ -z "${MLA_GPU_TESTS:-}" ] && TARGETS="$TARGETS mla_decode_bench"
[ -f bench/ops_bench.cc ] && [ -z "${MLA_GPU_TESTS:-}" ] && TARGETS="$TARGETS mla_ops_bench"
if [ -n "${MLA_BUILD_ALL:-}" ]; then
  run_step build "$LOG/build.log" 420 cmake --build "$BUILD" -j "$JOBS"
else
  # shellcheck disable=SC2086
  # -k 0: keep going, so one target that fails to compile does not keep the others from running.
  run_step build "$LOG/build.log" 300 cmake --build "$BUILD" -j "$JOBS" --target $TARGETS -- -k 0
fi
grep -E "error|warning" "$LOG/build.log" | grep -v "^=====" | head -20

# ---- 4. What the compiler made of the decode kernel: registers, spills, tensor-core ops.
if [ -f "$BUILD/kernels/libmla_kernels_cuda.a" ]; then
  {
    cuobjdump --dump-resource-usage "$BUILD/kernels/libmla_kernels_cuda.a" 2>&1 | grep -A1 -E "Function .*(Mla|Rms|Rope)"
    echo "--- SASS opcode counts of MlaDecodeSplitKvKernel"
    cuobjdump --dump-sass "$BUILD/kernels/libmla_kernels_cuda.a" 2>/dev/null |
      awk '/Function : .*MlaDecodeSplitKv/{f=1} /Function : /&&!/MlaDecodeSplitKv/{f=0} f' |
      grep -oE '\b(HMMA|LDSM|LDGSTS|LDL|STL|MUFU|BAR|LDG|STG)[.A-Z0-9_]*' | sort | uniq -c
  } > "$LOG/sass.txt" 2>&1
fi

# ---- 5. Tests.
if [ -n "${MLA_BUILD_ALL:-}" ]; then
  run_step ctest "$LOG/ctest.log" 600 ctest --test-dir "$BUILD" -V --timeout 300
else
  run_step ctest-gpu "$LOG/ctest.log" 240 ctest --test-dir "$BUILD" -V -R "$CTEST_RE" --timeout 200
fi
grep -E "^[0-9]+: .*(rel_l2|differ|splits|SKIP|latency|capture|without its peer)|tests passed|Test +#|\(Failed\)|FAILED" "$LOG/ctest.log" |
  sed -E 's/^[0-9]+: //' | cut -c1-220 | tail -60

# ---- 6. compute-sanitizer: memcheck on every GPU test, racecheck on those with shared memory.
if [[ "$SKIP" != *" sanitizer "* ]]; then
  for t in $GPU_TESTS; do
    [ "$t" = gpu_mla_decode_plan_test ] && continue  # host-only
    [ "$t" = gpu_nccl_communicator_test ] && continue  # forks NCCL processes
    [ -x "$BUILD/tests/$t" ] || continue
    run_step "memcheck $t" "$LOG/sanitizer.log" 150 \
      compute-sanitizer --tool memcheck --error-exitcode 1 --print-limit 20 "$BUILD/tests/$t"
  done
  # TEST[:GTEST_FILTER]: racecheck is slow on shared-memory-heavy kernels, so the larger tests
  # run it on their small cases only. Not gpu_mla_decode_test: racecheck does not credit the
  # named-barrier hand-off of the split kernel's factor slots and reports it in every version
  # (splitkv.cu's header; bench/RESULTS.md, run 21), and its other shared-memory traffic is TMA
  # and wgmma, which racecheck does not attribute to threads.
  for spec in gpu_rms_norm_test gpu_mla_decode_combine_test \
      "gpu_mla_prefill_attention_test:*SmallRaggedBatch*" gpu_moe_test \
      "gpu_sample_test:*SmallVocabularies*"; do
    t=${spec%%:*}
    filter=()
    [ "$t" = "$spec" ] || filter=(--gtest_filter="${spec#*:}")
    [ -x "$BUILD/tests/$t" ] || continue
    run_step "racecheck $t" "$LOG/sanitizer.log" 150 \
      compute-sanitizer --tool racecheck --error-exitcode 1 --print-limit 20 "$BUILD/tests/$t" \
      "${filter[@]}"
  done
  grep -E "ERROR SUMMARY|RACECHECK SUMMARY|Invalid|hazard" "$LOG/sanitizer.log" | sort | uniq -c | head -20
else
  record sanitizer skip 0
fi

# ---- 7. Benchmark: ours and PyTorch in one invocation (bench/RESULTS.md).
if [[ "$SKIP" != *" bench "* ]] && [ -x "$BUILD/bench/mla_decode_bench" ]; then
  PYTHONUNBUFFERED=1 run_step bench "$LOG/bench.log" 240 \
    python3 bench/mla_decode_torch.py --ours "$BUILD/bench/mla_decode_bench"
  grep -E "^\||^B=|device:|^torch" "$LOG/bench.log"
else
  record bench skip 0
fi
# Per-op timings at V3 shapes vs PyTorch and the roofline floor (bench/ops_torch.py).
if [[ "$SKIP" != *" bench "* ]] && [ -x "$BUILD/bench/mla_ops_bench" ]; then
  PYTHONUNBUFFERED=1 run_step bench-ops "$LOG/bench_ops.log" 600 \
    python3 bench/ops_torch.py --ours "$BUILD/bench/mla_ops_bench"
  grep -E "^\||MISMATCH|FAILED|failed" "$LOG/bench_ops.log"
fi

echo "----- summary ($LOG)"
cat "$SUMMARY"
exit $FAILED
