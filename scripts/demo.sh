#!/usr/bin/env bash
# The main job: make the tiny synthetic checkpoint, start an mla-coordinator and two mla-workers
# on loopback (tensor parallelism: tp=2, the workers meet over Gloo through the coordinator), stream
# a generation through the Python client (tools/mla_client.py), check it against the in-process
# single-rank generator, then drain and stop everything. Exits non-zero on any failure.
# REQUIRES: scripts/build.sh has built ${BUILD_DIR:-build}.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}
CKPT=${CKPT:-$BUILD_DIR/demo/tiny}
PYTHON=/usr/bin/python3  # Debian's, with python3-grpcio and python3-protobuf
PROMPT=5,6,7,8
RUN_DIR=$(mktemp -d)
COORDINATOR_PID=""
WORKER_PIDS=""

cleanup() {
  for pid in $WORKER_PIDS $COORDINATOR_PID; do
    kill "$pid" 2>/dev/null || true
  done
  rm -rf "$RUN_DIR"
}
trap cleanup EXIT

fail() {
  echo "demo: $*" >&2
  for log in "$RUN_DIR"/*.log; do
    [ -f "$log" ] && { echo "---- $log" >&2; cat "$log" >&2; }
  done
  exit 1
}

"$BUILD_DIR"/tools/mla-make-checkpoint --preset=tiny --seed=1 --out="$CKPT"

"$BUILD_DIR"/coordinator/mla-coordinator --checkpoint="$CKPT" --port=0 --address=127.0.0.1 \
  --tp=2 --pp=1 --drain_grace_s=10 >"$RUN_DIR/coordinator.out" 2>"$RUN_DIR/coordinator.log" &
COORDINATOR_PID=$!
PORT=""
for _ in $(seq 100); do
  PORT=$(sed -n 's/^listening on \([0-9]*\)$/\1/p' "$RUN_DIR/coordinator.out")
  [ -n "$PORT" ] && break
  kill -0 "$COORDINATOR_PID" 2>/dev/null || fail "mla-coordinator exited"
  sleep 0.1
done
[ -n "$PORT" ] || fail "mla-coordinator printed no port within 10 s"
echo "demo: mla-coordinator listening on port $PORT"

for rank in 0 1; do
  "$BUILD_DIR"/worker/mla-worker --coordinator=127.0.0.1:"$PORT" --checkpoint="$CKPT" \
    --rank="$rank" --connect_timeout_s=10 2>"$RUN_DIR/worker$rank.log" &
  WORKER_PIDS="$WORKER_PIDS $!"
done

export MLA_BIN_DIR=$BUILD_DIR
for _ in $(seq 100); do
  "$PYTHON" tools/mla_client.py --server=127.0.0.1:"$PORT" --status 2>/dev/null |
    grep -q '^serving: true' && break
  sleep 0.1
done
"$PYTHON" tools/mla_client.py --server=127.0.0.1:"$PORT" --status | grep -q '^serving: true' ||
  fail "the group is not serving after 10 s"
echo "demo: two workers (tp=2) serving"

echo "demo: streaming 24 tokens for prompt $PROMPT"
"$PYTHON" tools/mla_client.py --server=127.0.0.1:"$PORT" --prompt="$PROMPT" --max_tokens=24 \
  --ignore_eos | tee "$RUN_DIR/client.out" || fail "the client failed"
SERVED=$(sed -n 's/^tokens: //p' "$RUN_DIR/client.out")
IN_PROCESS=$("$BUILD_DIR"/tools/mla-generate --checkpoint="$CKPT" --prompt="$PROMPT" \
  --max_tokens=24 --ignore_eos 2>/dev/null | sed -n 's/^tokens: //p')
[ "$SERVED" = "$IN_PROCESS" ] || fail "served tokens $SERVED differ from in-process $IN_PROCESS"
echo "demo: served tokens equal mla-generate's"

kill -TERM "$COORDINATOR_PID"
wait "$COORDINATOR_PID" || fail "mla-coordinator exited with $?"
COORDINATOR_PID=""
for pid in $WORKER_PIDS; do
  wait "$pid" || fail "mla-worker exited with $?"
done
WORKER_PIDS=""
echo "demo: coordinator drained and both workers shut down cleanly"
