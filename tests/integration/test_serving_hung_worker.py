"""A hung worker (SIGSTOP) in a tp=2 group, under load and when idle.

Under load the stopped rank never answers its step and its peer's all-reduce times out: the
missing heartbeats or the step deadline fail the stopped rank, the streams in flight end with UNAVAILABLE
within 10 s, the coordinator reports NOT_SERVING and resets the survivor; the stopped worker is
then killed and a replacement re-forms the group.
When idle, the missing heartbeats (--heartbeat_timeout_s) detect a stopped worker within 10 s;
it is then killed and a replacement heals the group.
"""

import os
import signal
import sys
import time

from fault_load import Load
from serving_harness import Cluster, request, run_checks, wait_for

SEED = 7
COORDINATOR_FLAGS = ["--heartbeat_timeout_s=4", "--step_timeout_s=6"]
WORKER_FLAGS = ["--heartbeat_s=0.5", "--collective_timeout_s=3"]


def stopped_worker_is_failed_then_heals():
    print(f"load seed {SEED}")
    with Cluster(tp=2, pp=1, num_cache_blocks=64, extra_flags=COORDINATOR_FLAGS) as c:
        workers = [c.start_worker(WORKER_FLAGS) for _ in range(2)]
        c.wait_serving(timeout=90)
        load = Load(c.client, threads=3, seed=SEED, max_tokens=(40, 80)).start()
        try:
            wait_for(lambda: load.ok_since(0) >= 1, 30, "a first OK request")
            victim = workers[1]
            in_flight = len(load.in_flight_at(time.monotonic()))
            t_stop = time.monotonic()
            os.kill(victim.popen.pid, signal.SIGSTOP)
            wait_for(lambda: c.client.health() == "NOT_SERVING", 10, "NOT_SERVING")
            t_down = time.monotonic() - t_stop
            wait_for(lambda: all(r["end"] is not None for r in load.in_flight_at(t_stop)), 10,
                     "the streams in flight at the stop to end")
            t_ended = time.monotonic() - t_stop
            print(f"  SIGSTOP under load ({in_flight} streams in flight): NOT_SERVING after"
                  f" {t_down:.2f} s, every stream in flight ended {t_ended:.2f} s after it")
            victim.popen.kill()  # SIGKILL works on a stopped process
            workers.append(c.start_worker(WORKER_FLAGS))
            t_new = time.monotonic()
            c.wait_serving(timeout=60)
            t_up = time.monotonic() - t_new
            wait_for(lambda: load.ok_since(t_new + t_up) >= 2, 30, "OK requests after healing")
            print(f"  killed it; a replacement serves {t_up:.2f} s after it started")
        finally:
            load.finish()
        summary = load.check([t_stop], bound_s=10.0)
        print(f"  {summary['requests']} requests: {summary['ok']} OK, {summary['unavailable']}"
              f" UNAVAILABLE; the slowest stream in flight ended {summary['worst_end_s']:.2f} s"
              f" after the stop; lost 0")

        # Idle: only the heartbeats can tell.
        wait_for(lambda: c.client.status().num_running == 0, 10, "idle")
        victim = workers[0]
        t_stop = time.monotonic()
        os.kill(victim.popen.pid, signal.SIGSTOP)
        wait_for(lambda: c.client.health() == "NOT_SERVING", 10, "NOT_SERVING (heartbeats)")
        t_down = time.monotonic() - t_stop
        assert "heartbeat timeout" in c.coordinator.log(), c.coordinator.log()[-2000:]
        victim.popen.kill()
        workers.append(c.start_worker(WORKER_FLAGS))
        t_new = time.monotonic()
        c.wait_serving(timeout=60)
        print(f"  SIGSTOP when idle: NOT_SERVING after {t_down:.2f} s (heartbeat timeout 4 s);"
              f" killed, a replacement serves {time.monotonic() - t_new:.2f} s after it started")
        tokens, _ = c.client.generate(request([5, 6, 7], 5))
        assert len(tokens) == 5
        wait_for(lambda: c.client.status().cache_blocks_free == 64, 10, "a whole free cache")


if __name__ == "__main__":
    sys.exit(run_checks([stopped_worker_is_failed_then_heals]))
