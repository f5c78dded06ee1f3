"""64 concurrent clients with different prompt lengths and max_tokens all finish, and each gets
exactly the tokens it gets when the requests are sent one at a time (greedy, and sampled with a
seed: a request's tokens do not depend on what else shares the batch).

Then the same requests against a cache of 24 blocks, so that sequences are preempted and
recomputed: the outputs must still be the same, and the cache must come back whole.
"""

import random
import sys
from concurrent.futures import ThreadPoolExecutor

from serving_harness import Cluster, pb, request, run_checks, wait_for

NUM_CLIENTS = 64
SEED = 1234


def make_requests():
    rng = random.Random(SEED)
    print(f"request seed {SEED}")
    requests = []
    for i in range(NUM_CLIENTS):
        prompt = [rng.randrange(2, 1024) for _ in range(rng.choice([1, 7, 63, 64, 65, 130, 200]))]
        max_tokens = rng.randint(1, 32)
        if i % 8 == 7:  # every eighth samples, with its own seed
            requests.append(request(prompt, max_tokens, temperature=0.9, top_k=40, seed=i))
        else:
            requests.append(request(prompt, max_tokens))
    return requests


def run_all(client, requests, concurrently):
    def one(r):
        tokens, last = client.generate(r, timeout=300)
        assert last.finish_reason == pb.FINISH_REASON_LENGTH, last
        assert len(tokens) == r.max_tokens, (len(tokens), r.max_tokens)
        return tokens
    if not concurrently:
        return [one(r) for r in requests]
    with ThreadPoolExecutor(max_workers=len(requests)) as pool:
        return list(pool.map(one, requests))


def compare(label, got, expected):
    bad = [i for i, (g, e) in enumerate(zip(got, expected)) if g != e]
    print(f"  {label}: {len(got) - len(bad)}/{len(got)} requests equal to one-at-a-time")
    assert not bad, f"{label}: requests {bad} differ, e.g. {got[bad[0]]} vs {expected[bad[0]]}"


def main():
    requests = make_requests()
    results = {}

    def concurrent_equals_one_at_a_time():
        with Cluster(extra_flags=["--max_num_seqs=32", "--max_num_batched_tokens=512"]) as c:
            c.start_worker()
            c.wait_serving()
            results["alone"] = run_all(c.client, requests, concurrently=False)
            before = c.client.status()
            results["together"] = run_all(c.client, requests, concurrently=True)
            after = c.client.status()
            steps = after.num_steps - before.num_steps
            print(f"  concurrent run: {steps} steps for {sum(r.max_tokens for r in requests)} "
                  f"tokens, {after.num_preemptions} preemptions")
            compare("concurrent", results["together"], results["alone"])
            wait_for(lambda: c.client.status().cache_blocks_free == 512, 10, "all blocks free")

    def preempted_equals_one_at_a_time():
        assert "alone" in results, "needs the first check's results"
        with Cluster(num_cache_blocks=24,
                     extra_flags=["--max_num_seqs=32", "--max_num_batched_tokens=512"]) as c:
            c.start_worker()
            c.wait_serving()
            got = run_all(c.client, requests, concurrently=True)
            status = c.client.status()
            print(f"  24-block cache: {status.num_preemptions} preemptions, "
                  f"{status.num_steps} steps")
            assert status.num_preemptions > 0, "the small cache should force preemptions"
            compare("preempted", got, results["alone"])
            wait_for(lambda: c.client.status().cache_blocks_free == 24, 10, "all blocks free")

    return run_checks([concurrent_equals_one_at_a_time, preempted_equals_one_at_a_time])


if __name__ == "__main__":
    sys.exit(main())
