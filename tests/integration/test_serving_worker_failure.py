"""A worker that dies mid-generation: its in-flight requests fail with UNAVAILABLE within
seconds, the coordinator stays up and reports NOT_SERVING (rank 0 FAILED in GetClusterStatus),
and it serves again, with its whole cache free, once a new worker has taken the rank.
"""

import sys
import time

import grpc

from serving_harness import Cluster, pb, request, run_checks, wait_for


def main():
    def dead_worker_fails_requests_then_group_heals():
        with Cluster(num_cache_blocks=64) as cluster:
            first = cluster.start_worker()
            cluster.wait_serving()
            client = cluster.client
            call = client.stream(request(list(range(2, 60)), 4000), timeout=60)
            next(iter(call))
            t0 = time.monotonic()
            first.popen.kill()  # SIGKILL: no goodbye on the stream
            try:
                for _ in call:
                    pass
                raise AssertionError("the stream should fail")
            except grpc.RpcError as error:
                elapsed = time.monotonic() - t0
                assert error.code() == grpc.StatusCode.UNAVAILABLE, error
                assert "rank 0" in error.details(), error.details()
                print(f"  UNAVAILABLE {elapsed:.2f} s after the kill: {error.details()!r}")
                assert elapsed < 5, elapsed
            wait_for(lambda: client.health() == "NOT_SERVING", 5, "NOT_SERVING")
            status = client.status()
            assert not status.serving, status
            assert status.workers[0].state == pb.WORKER_STATE_FAILED, status
            print(f"  status detail: {status.detail!r}")
            assert cluster.coordinator.popen.poll() is None, "the coordinator must stay up"

            cluster.start_worker()
            cluster.wait_serving()
            tokens, last = client.generate(request([3, 4, 5], 6))
            assert len(tokens) == 6 and last.finish_reason == pb.FINISH_REASON_LENGTH, last
            wait_for(lambda: client.status().cache_blocks_free == 64, 5, "a whole free cache")

    return run_checks([dead_worker_fails_requests_then_group_heals])


if __name__ == "__main__":
    sys.exit(main())
