"""Coordinator + one worker on the tiny checkpoint: streamed generations equal the in-process
generation (mla-generate) token for token, greedy and sampled with a seed; stop conditions,
usage, request ids and GetModelInfo are as specified.

The coordinator runs with a per-step budget of 256 tokens, so long prompts are prefilled in
chunks (mla-generate prefills in one step), and with --max_model_len=1024 (the model's context is
5120).
"""

import random
import sys

from serving_harness import Cluster, pb, reference_tokens, request, run_checks


def main():
    rng = random.Random(20240601)
    print("prompt seed 20240601")
    with Cluster(extra_flags=["--max_num_batched_tokens=256", "--max_model_len=1024"]) as cluster:
        cluster.start_worker()
        cluster.wait_serving()
        client = cluster.client

        def expect_same(prompt, max_tokens, **sampling):
            tokens, last = client.generate(request(prompt, max_tokens, **sampling))
            ref_sampling = dict(sampling)
            if ref_sampling.get("top_p", 0) == 0:
                ref_sampling["top_p"] = 1.0
            expected = reference_tokens(prompt, max_tokens, **ref_sampling)
            print(f"  prompt len {len(prompt)}, max_tokens {max_tokens}, {sampling}: "
                  f"{len(tokens)} tokens, first {tokens[:6]}")
            assert tokens == expected, f"served {tokens}\n      in-process {expected}"
            assert last.finish_reason == pb.FINISH_REASON_LENGTH, last
            assert last.usage.prompt_tokens == len(prompt), last.usage
            assert last.usage.completion_tokens == len(tokens), last.usage

        def greedy_equals_in_process():
            expect_same([5, 6, 7, 8], 24)
            expect_same([rng.randrange(1024) for _ in range(600)], 20)  # 3 chunks of <= 256
            expect_same([3], 70)  # the cache grows past one 64-token block while decoding

        def sampled_equals_in_process():
            prompt = [rng.randrange(1024) for _ in range(33)]
            expect_same(prompt, 24, temperature=0.8, seed=7)
            expect_same(prompt, 24, temperature=1.3, top_p=0.9, top_k=50, seed=123)
            expect_same(prompt, 16, temperature=0.7, top_k=5, seed=2**63 + 5)

        def eos_and_stop_tokens():
            prompt = [9, 8, 7]
            ref = reference_tokens(prompt, 40)
            stop = ref[5]
            tokens, last = client.generate(request(prompt, 40, stop_token_ids=[stop, 1023]))
            assert tokens == ref[:ref.index(stop) + 1], (tokens, ref)
            assert last.finish_reason == pb.FINISH_REASON_STOP_TOKEN, last
            # Without ignore_eos the in-process loop also stops at eos (id 1) if sampled.
            ref_eos = reference_tokens(prompt, 40, ignore_eos=False)
            tokens, last = client.generate(request(prompt, 40, ignore_eos=False))
            assert tokens == ref_eos, (tokens, ref_eos)
            expected = pb.FINISH_REASON_STOP_EOS if tokens[-1] == 1 else pb.FINISH_REASON_LENGTH
            assert last.finish_reason == expected, last

        def request_ids_and_usage():
            tokens, last = client.generate(request([1, 2, 3], 5, request_id="client-42"))
            assert last.request_id == "client-42", last
            _, last = client.generate(request([1, 2, 3], 5))
            assert last.request_id, "the server assigns a request_id"
            assert last.usage.prompt_tokens == 3 and last.usage.completion_tokens == 5, last

        def max_tokens_zero_means_to_the_context():
            prompt = [rng.randrange(2, 1024) for _ in range(1000)]
            tokens, last = client.generate(request(prompt, 0), timeout=300)
            assert len(tokens) == 1024 - 1000, len(tokens)
            assert last.finish_reason == pb.FINISH_REASON_LENGTH, last

        def model_info():
            info = client.info()
            print(f"  {info}".replace("\n", " "))
            assert (info.vocab_size, info.num_layers, info.num_heads, info.hidden_size) == \
                (1024, 4, 8, 256), info
            assert info.max_context_len == 1024 and info.block_size == 64, info  # --max_model_len
            assert info.kv_cache_bytes_per_token == 2 * (64 + 16) * 4, info
            assert (info.tp_size, info.pp_size, info.eos_token_id) == (1, 1, 1), info

        def cluster_status_when_idle():
            status = client.status()
            assert status.serving and status.cache_blocks_total == 512, status
            assert status.cache_blocks_free == 512, status
            assert status.num_running == 0 and status.num_waiting == 0, status
            assert len(status.workers) == 1, status
            assert status.workers[0].state == pb.WORKER_STATE_READY, status
            assert status.num_steps > 0 and status.step_loop_cpu_seconds > 0, status

        return run_checks([greedy_equals_in_process, sampled_equals_in_process,
                           eos_and_stop_tokens, request_ids_and_usage,
                           max_tokens_zero_means_to_the_context, model_info,
                           cluster_status_when_idle])


if __name__ == "__main__":
    sys.exit(main())
