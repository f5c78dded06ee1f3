"""Coordinator death: a tp=1 x pp=2 group serves, the coordinator is SIGKILLed with streams in
flight (they end with UNAVAILABLE, the transport being gone), and a new coordinator is started on
the same port. The same worker processes notice the broken stream, drop their shard and
communicators, reconnect with backoff (within --connect_timeout_s), register again, re-form the
group through the new coordinator's rendezvous store and serve: the new coordinator's requests
give the tokens the first one gave.
"""

import sys
import time

import grpc

from serving_harness import COORDINATOR, Cluster, Process, request, run_checks, wait_for


def workers_reregister_with_a_restarted_coordinator():
    with Cluster(tp=1, pp=2, num_cache_blocks=64) as c:
        flags = ["--heartbeat_s=0.5", "--collective_timeout_s=3"]
        workers = [c.start_worker(flags) for _ in range(2)]
        c.wait_serving(timeout=90)
        before, _ = c.client.generate(request([9, 8, 7, 6], 8))
        call = c.client.stream(request(list(range(2, 40)), 3000), timeout=60)
        next(iter(call))
        t_kill = time.monotonic()
        c.coordinator.popen.kill()
        c.coordinator.popen.wait(timeout=10)
        try:
            for _ in call:
                pass
            raise AssertionError("the stream should fail")
        except grpc.RpcError as error:
            assert error.code() == grpc.StatusCode.UNAVAILABLE, error
            print(f"  stream in flight: UNAVAILABLE {time.monotonic() - t_kill:.2f} s after the"
                  " kill")
        wait_for(lambda: all("lost the coordinator" in w.log() for w in workers), 10,
                 "the workers to notice")
        old = c.coordinator
        old.kill()
        flags = [f if not f.startswith("--port=") else f"--port={c.port}" for f in c.flags]
        t_start = time.monotonic()
        c.coordinator = Process("coordinator2", [COORDINATOR, *flags], c.log_dir)
        port = Cluster._read_port(c.coordinator, timeout=30)
        assert port == c.port, (port, c.port)
        c.wait_serving(timeout=60)
        t_up = time.monotonic() - t_start
        assert all(w.popen.poll() is None for w in workers), "the same workers serve again"
        after, last = c.client.generate(request([9, 8, 7, 6], 8))
        assert after == before, (after, before)
        wait_for(lambda: c.client.status().cache_blocks_free == 64, 10, "a whole free cache")
        print(f"  the restarted coordinator serves with the same 2 worker processes {t_up:.2f} s"
              f" after it started ({time.monotonic() - t_kill:.2f} s after the kill); the same"
              " tokens as before")


if __name__ == "__main__":
    sys.exit(run_checks([workers_reregister_with_a_restarted_coordinator]))
