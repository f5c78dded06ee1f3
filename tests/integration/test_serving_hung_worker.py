"""A hung worker (SIGSTOP) in a tp=2 group, under load and when idle, that then resumes (SIGCONT).

Under load the stopped rank never answers its step and its peer's all-reduce times out: the
missing heartbeats or the step deadline fail the stopped rank, the streams in flight end with UNAVAILABLE
within 10 s, the coordinator reports NOT_SERVING and resets the survivor.
When idle, the missing heartbeats (--heartbeat_timeout_s) detect a stopped worker within 10 s.
Both times the stopped worker is then resumed: it finds its old session closed (after at most one
collective timeout if it was stopped inside a step), drops its group state, registers again (the
same process) and the group re-forms and serves within 15 s, with no replacement started.
"""

import os
import re
import signal
import sys
import time

from fault_load import Load
from serving_harness import Cluster, request, run_checks, wait_for

SEED = 7
COORDINATOR_FLAGS = ["--heartbeat_timeout_s=4", "--step_timeout_s=6"]
WORKER_FLAGS = ["--heartbeat_s=0.5", "--collective_timeout_s=3"]
HEAL_S = 15  # SIGCONT to SERVING


def registrations(cluster, pid):
    return len(re.findall(rf"rank \d registered: .*pid {pid}, ", cluster.coordinator.log()))


def resume_and_heal(cluster, workers, victim):
    """SIGCONTs a stopped victim; the same process must re-register and the group serve again."""
    pid = victim.popen.pid
    before = registrations(cluster, pid)
    os.kill(pid, signal.SIGCONT)
    t_cont = time.monotonic()
    cluster.wait_serving(timeout=HEAL_S)
    t_up = time.monotonic() - t_cont
    assert registrations(cluster, pid) == before + 1, cluster.coordinator.log()[-3000:]
    assert len(cluster.workers) == 2 and all(w.popen.poll() is None for w in workers), \
        "a worker exited"
    return t_cont, t_up


def stopped_worker_is_failed_then_resumes():
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
            t_cont, t_up = resume_and_heal(c, workers, victim)
            wait_for(lambda: load.ok_since(t_cont + t_up) >= 2, 30, "OK requests after healing")
            print(f"  SIGCONT: the same worker re-registered; serving {t_up:.2f} s after it")
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
        _, t_up = resume_and_heal(c, workers, victim)
        print(f"  SIGSTOP when idle: NOT_SERVING after {t_down:.2f} s (heartbeat timeout 4 s);"
              f" SIGCONT: the same worker re-registered, serving {t_up:.2f} s after it")
        tokens, _ = c.client.generate(request([5, 6, 7], 5))
        assert len(tokens) == 5
        wait_for(lambda: c.client.status().cache_blocks_free == 64, 10, "a whole free cache")


if __name__ == "__main__":
    sys.exit(run_checks([stopped_worker_is_failed_then_resumes]))
