"""Chaos: a steady load of concurrent streams on tp=2 x pp=2 CPU workers while a random worker
is SIGKILLed at a random moment (mid-step, mid-collective or idle), several rounds with a fixed,
printed seed. Every round: the streams in flight end with UNAVAILABLE within 5 s, the coordinator
stays up and reports NOT_SERVING, the survivors are told to Reset, and once a replacement worker
registers the whole group re-forms (new rendezvous prefix; survivors keep their checkpoint) and
serves again. At the end every request has exactly one final status (OK or UNAVAILABLE), none
hung, and the cache is whole again when idle.
"""

import os
import random
import sys
import time

from fault_load import Load
from serving_harness import Cluster, run_checks, wait_for

SEED = int(os.environ.get("MLA_CHAOS_SEED", "20261128"))
ROUNDS = 3
BLOCKS = 96
COORDINATOR_FLAGS = ["--heartbeat_timeout_s=4", "--step_timeout_s=6",
                     "--max_num_batched_tokens=96"]
WORKER_FLAGS = ["--heartbeat_s=0.5", "--collective_timeout_s=3"]


def chaos_rounds():
    rng = random.Random(SEED)
    print(f"chaos seed {SEED} (set MLA_CHAOS_SEED to replay)")
    with Cluster(tp=2, pp=2, num_cache_blocks=BLOCKS, extra_flags=COORDINATOR_FLAGS) as c:
        workers = [c.start_worker(WORKER_FLAGS) for _ in range(4)]
        c.wait_serving(timeout=90)
        load = Load(c.client, threads=4, seed=SEED).start()
        faults, recoveries, unavailable_after = [], [], []
        try:
            wait_for(lambda: load.ok_since(0) >= 2, 30, "first OK requests")
            for k in range(ROUNDS):
                time.sleep(rng.uniform(0.3, 2.0))
                victim = rng.choice([w for w in workers if w.popen.poll() is None])
                in_flight = len(load.in_flight_at(time.monotonic()))
                t_kill = time.monotonic()
                victim.popen.kill()
                faults.append(t_kill)
                wait_for(lambda: c.client.health() == "NOT_SERVING", 5, "NOT_SERVING")
                t_down = time.monotonic() - t_kill
                assert c.coordinator.popen.poll() is None, "the coordinator must stay up"
                workers.append(c.start_worker(WORKER_FLAGS))
                c.wait_serving(timeout=60)
                t_up = time.monotonic() - t_kill
                wait_for(lambda: load.ok_since(t_kill + t_up) >= 2, 30,
                         "OK requests after the re-formation")
                recoveries.append(t_up)
                print(f"  round {k + 1}: killed {victim.name} with {in_flight} streams in flight;"
                      f" NOT_SERVING after {t_down:.2f} s, serving again {t_up:.2f} s after the"
                      f" kill", flush=True)
                unavailable_after.append(t_down)
        finally:
            load.finish()
        summary = load.check(faults, bound_s=5.0)
        print(f"  {summary['requests']} requests: {summary['ok']} OK, {summary['unavailable']}"
              f" UNAVAILABLE ({summary['affected']} in flight at a kill, the slowest ended"
              f" {summary['worst_end_s']:.2f} s after it); lost 0; recovery"
              f" {min(recoveries):.1f}-{max(recoveries):.1f} s")
        wait_for(lambda: (lambda s: s.serving and s.num_running == 0 and s.num_waiting == 0
                          and s.cache_blocks_free == s.cache_blocks_total == BLOCKS)(
                              c.client.status()), 10, "the whole cache free when idle")
        log = "".join(w.log() for w in workers)
        assert "reset:" in log, "the survivors were never told to reset"
        assert "checkpoint kept" in log, "no survivor kept its checkpoint"


if __name__ == "__main__":
    sys.exit(run_checks([chaos_rounds]))
