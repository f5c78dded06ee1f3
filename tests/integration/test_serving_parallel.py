"""Tensor and pipeline parallelism across real processes: a coordinator and tp x pp CPU workers
meeting through the coordinator's Gloo rendezvous store. For each layout in {2x1, 1x2, 2x2, 4x1},
several concurrent requests (greedy and seeded sampling) give exactly the tokens of the in-process
single-rank model (mla-generate): the CPU model sums row-parallel partials in float64, so every
layout computes the same floats. Afterwards the cache is whole again. Also: a worker that brings
a checkpoint whose config differs from the group's is refused with a message naming both.
"""

import os
import random
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor

from serving_harness import BIN_DIR, Cluster, reference_tokens, request, run_checks, wait_for

SEED = 99
LAYOUTS = [(2, 1), (1, 2), (2, 2), (4, 1)]


def make_requests():
    rng = random.Random(SEED)
    print(f"request seed {SEED}")
    out = []
    for i in range(6):
        prompt = [rng.randrange(2, 1024) for _ in range(rng.choice([3, 64, 65, 100]))]
        sampled = i % 3 == 2
        out.append(dict(prompt=prompt, max_tokens=rng.randint(3, 10),
                        temperature=0.8 if sampled else 0.0, top_k=50 if sampled else 0,
                        seed=1000 + i))
    return out


REQUESTS = make_requests()
EXPECTED = []


def expected():
    if not EXPECTED:
        for r in REQUESTS:
            EXPECTED.append(reference_tokens(r["prompt"], r["max_tokens"], r["temperature"],
                                             1.0, r["top_k"], r["seed"]))
    return EXPECTED


def run_layout(tp, pp):
    want = expected()
    with Cluster(tp=tp, pp=pp, extra_flags=["--max_num_batched_tokens=96"]) as c:
        for _ in range(tp * pp):
            c.start_worker()
        c.wait_serving(timeout=120)
        free_before = c.client.status().cache_blocks_free

        def one(r):
            tokens, _ = c.client.generate(
                request(r["prompt"], r["max_tokens"], temperature=r["temperature"],
                        top_k=r["top_k"], seed=r["seed"]), timeout=300)
            return tokens

        with ThreadPoolExecutor(max_workers=len(REQUESTS)) as pool:
            got = list(pool.map(one, REQUESTS))
        bad = [i for i in range(len(got)) if got[i] != want[i]]
        print(f"  tp={tp} x pp={pp}: {len(got) - len(bad)}/{len(got)} requests equal to the "
              f"single-rank model")
        assert not bad, f"requests {bad} differ: {got[bad[0]]} vs {want[bad[0]]}"
        wait_for(lambda: c.client.status().cache_blocks_free == free_before, 10,
                 "all cache blocks free again")


def layouts_match_single_rank():
    for tp, pp in LAYOUTS:
        run_layout(tp, pp)


def worker_with_another_checkpoint_is_refused():
    other = tempfile.mkdtemp(prefix="mla_other_ckpt_")
    subprocess.run([os.path.join(BIN_DIR, "tools", "mla-make-checkpoint"), "--preset=tiny",
                    "--seed=1", "--num_layers=3", f"--out={other}"], check=True,
                   capture_output=True, timeout=120)
    with Cluster(tp=1, pp=2) as c:
        c.start_worker()
        stranger = c.start_worker(extra_flags=[f"--checkpoint={other}"])
        wait_for(lambda: stranger.popen.poll() is not None or "differs" in c.coordinator.log(),
                 30, "the coordinator to refuse the worker")
        log = c.coordinator.log() + stranger.log()
        assert "differs" in log, log
        print("  refused:", [l for l in log.splitlines() if "differs" in l][0][:160])
        assert c.client.health() != "SERVING"


if __name__ == "__main__":
    sys.exit(run_checks([layouts_match_single_rank, worker_with_another_checkpoint_is_refused]))
