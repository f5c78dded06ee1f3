#!/usr/bin/env bash
# One GPU call for the MLA decode kernel (bench/RESULTS.md's runs), on a GPU host with the
# offline bundle in .offline (scripts/gpu_bundle.sh): configure through scripts/gpu_test.sh,
# build the decode tests and the benchmark only, dump the kernel's SASS summary, run the three
# decode tests, compute-sanitizer memcheck on the decode test, then the benchmark vs PyTorch.
# Each step has its own time limit so that a hang costs minutes, not the call. Logs (at most 8
# files) go to $OUT (else .offline/logs): env.log build.log summary.txt sass.txt sass_full.txt
# tests.log sanitizer.log bench.log. Prints a short summary last. MLA_DECODE_CASES overrides the
# benchmark's case list (bench/mla_decode_bench.cu's syntax).
set -uo pipefail
cd "$(dirname "$0")/.."
LOG=${OUT:-.offline/logs}
mkdir -p "$LOG"
export OUT=$LOG
B=${BUILD_DIR:-build-gpu}
MLA_SKIP=build bash scripts/gpu_test.sh > /dev/null 2>&1  # unpack the bundle, configure
timeout 300 cmake --build "$B" -j "$(nproc)" --target gpu_mla_decode_test \
  gpu_mla_decode_plan_test gpu_mla_decode_combine_test mla_decode_bench >> "$LOG/build.log" 2>&1 ||
  { grep -E "error" "$LOG/build.log" | head -20; echo "build failed"; exit 1; }

A=$B/kernels/libmla_kernels_cuda.a
{
  cuobjdump --dump-resource-usage "$A" 2>&1 | grep -A1 -E "Function .*MlaDecode"
  cuobjdump --dump-sass "$A" 2>/dev/null |
    awk '/Function : .*MlaDecodeSplitKv/{f=1} /Function : /&&!/MlaDecodeSplitKv/{f=0} f' > "$LOG/sass_full.txt"
  echo "--- SASS opcode counts of MlaDecodeSplitKvKernel"
  grep -oE '\b(HGMMA|WARPGROUP|UTMALDG|UBLKCP|SYNCS|BAR|LDL|STL|MUFU|WARPSYNC|DEPBAR|LDS|STS|LDG|STG)[.A-Z0-9_]*' \
    "$LOG/sass_full.txt" | sort | uniq -c
} > "$LOG/sass.txt" 2>&1

for t in plan combine ""; do
  timeout 120 "$B/tests/gpu_mla_decode${t:+_$t}_test" >> "$LOG/tests.log" 2>&1
  echo "test gpu_mla_decode${t:+_$t}_test rc=$?"
done
timeout 150 compute-sanitizer --tool memcheck --error-exitcode 1 --print-limit 10 \
  "$B/tests/gpu_mla_decode_test" --gtest_filter='*RaggedBatchAllPlans:*MultiRow*:*CapturesInCudaGraph' \
  > "$LOG/sanitizer.log" 2>&1
echo "memcheck rc=$? $(grep -m1 'ERROR SUMMARY' "$LOG/sanitizer.log")"
PYTHONUNBUFFERED=1 timeout 240 python3 bench/mla_decode_torch.py --ours "$B/bench/mla_decode_bench" \
  ${MLA_DECODE_CASES:+--cases=$MLA_DECODE_CASES} > "$LOG/bench.log" 2>&1
echo "bench rc=$?"

echo "----- tests ($(grep -c rel_l2 "$LOG/tests.log") comparisons; worst shares of tolerance:)"
grep -E "rel_l2" "$LOG/tests.log" | sed -E 's/.*: n=[0-9]+ (rel_l2=[^ ]+).*= ([0-9.a-z]+)% of tolerance.*NaN ([0-9]+)/\1 \2% NaN=\3/' |
  sort | uniq -c | sort -rn | head -12
grep -E "FAILED|\[  PASSED|Failure|error|Error" "$LOG/tests.log" | cut -c1-200 | head -30
echo "----- sass"
head -40 "$LOG/sass.txt"
echo "----- bench"
grep -E "^\||^device|^torch|lanes|failed|Error" "$LOG/bench.log" | cut -c1-250
