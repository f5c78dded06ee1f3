"""SIGTERM drains the coordinator: it stops accepting (new requests get UNAVAILABLE, health
NOT_SERVING), lets in-flight requests finish within --drain_grace_s, ends the rest with a final
chunk whose finish_reason is CANCELLED, sends its worker Shutdown, and exits 0; the worker
exits 0 too. Every request ends with exactly one final status.
"""

import sys
import threading
import time

import grpc

from serving_harness import Cluster, pb, request, run_checks, wait_for

SHORT_TOKENS = 24  # finishes well within the grace period, even under ASan
GRACE_S = 6


def consume(client, req, out):
    """Runs one stream; records (tokens, number of chunks with a finish_reason, last finish
    reason, status code)."""
    tokens, finals, reason = [], 0, None
    out["tokens"] = tokens  # visible while streaming
    try:
        for chunk in client.stream(req, timeout=120):
            tokens.extend(chunk.token_ids)
            if chunk.HasField("finish_reason"):
                finals += 1
                reason = chunk.finish_reason
        code = grpc.StatusCode.OK
    except grpc.RpcError as error:
        code = error.code()
    out.update(tokens=tokens, finals=finals, reason=reason, code=code)


def main():
    def drain_on_sigterm():
        with Cluster(extra_flags=[f"--drain_grace_s={GRACE_S}"]) as cluster:
            worker = cluster.start_worker()
            cluster.wait_serving()
            client = cluster.client
            long_results = [{} for _ in range(4)]
            threads = [threading.Thread(target=consume,
                                        args=(client, request([2 + i] * 40, 4000), r))
                       for i, r in enumerate(long_results)]
            for t in threads:
                t.start()
            wait_for(lambda: client.status().num_running == 4, 10, "four running requests")
            short = {}
            short_thread = threading.Thread(target=consume,
                                            args=(client, request([9, 9], SHORT_TOKENS), short))
            short_thread.start()
            # SIGTERM once the short one streams (it then has SHORT_TOKENS - 1 left to finish).
            wait_for(lambda: short.get("tokens"), 10, "the short one streaming")

            t0 = time.monotonic()
            cluster.terminate_coordinator()
            wait_for(lambda: client.health() == "NOT_SERVING", 5, "NOT_SERVING while draining")
            try:
                client.generate(request([1, 2], 4), timeout=10)
                raise AssertionError("a request during the drain should be refused")
            except grpc.RpcError as error:
                assert error.code() == grpc.StatusCode.UNAVAILABLE, error
                print(f"  new request while draining: UNAVAILABLE {error.details()!r}")

            for t in [*threads, short_thread]:
                t.join(timeout=GRACE_S + 30)
                assert not t.is_alive(), "a stream did not end"
            ended = time.monotonic() - t0
            print(f"  all streams ended {ended:.2f} s after SIGTERM (grace {GRACE_S} s)")
            assert short["code"] == grpc.StatusCode.OK and short["finals"] == 1, short
            assert short["reason"] == pb.FINISH_REASON_LENGTH, short
            assert len(short["tokens"]) == SHORT_TOKENS, short
            for r in long_results:
                assert r["code"] == grpc.StatusCode.OK, r["code"]
                assert r["finals"] == 1 and r["reason"] == pb.FINISH_REASON_CANCELLED, r
                assert 0 < len(r["tokens"]) < 4000, len(r["tokens"])
            print(f"  long requests cancelled after {[len(r['tokens']) for r in long_results]}"
                  " tokens")
            assert ended < GRACE_S + 10, ended

            assert cluster.coordinator.wait(timeout=30) == 0, cluster.coordinator.log()
            assert worker.wait(timeout=30) == 0, worker.log()
            assert "shutdown" in worker.log(), worker.log()

    def drain_when_idle_is_quick():
        with Cluster(extra_flags=["--drain_grace_s=30"]) as cluster:
            worker = cluster.start_worker()
            cluster.wait_serving()
            t0 = time.monotonic()
            cluster.terminate_coordinator()
            assert cluster.coordinator.wait(timeout=20) == 0
            assert worker.wait(timeout=20) == 0
            print(f"  idle coordinator and worker exited {time.monotonic() - t0:.2f} s after "
                  "SIGTERM")

    def worker_exits_when_coordinator_dies():
        with Cluster() as cluster:
            worker = cluster.start_worker(["--connect_timeout_s=2"])
            cluster.wait_serving()
            cluster.coordinator.kill()  # SIGKILL: no Shutdown for the worker
            assert worker.wait(timeout=30) == 0, worker.log()
            assert "gone" in worker.log(), worker.log()

    return run_checks([drain_on_sigterm, drain_when_idle_is_quick,
                       worker_exits_when_coordinator_dies])


if __name__ == "__main__":
    sys.exit(main())
