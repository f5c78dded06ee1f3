"""Client cancellation and deadline expiry free a request's cache blocks at once: once the
server is idle, GetClusterStatus shows the free block count back at its starting value. Covers a
request cancelled while decoding, one cancelled while still queued, and deadlines expiring
mid-stream and before admission; the server keeps serving afterwards.
"""

import sys
import threading
import time

import grpc

from serving_harness import Cluster, pb, request, run_checks, wait_for

BLOCKS = 64


def main():
    # One running sequence at a time, so a second request waits in the queue.
    with Cluster(num_cache_blocks=BLOCKS, extra_flags=["--max_num_seqs=1"]) as cluster:
        cluster.start_worker()
        cluster.wait_serving()
        client = cluster.client
        start = client.status().cache_blocks_free
        assert start == BLOCKS, start

        def idle_and_whole():
            status = client.status()
            return (status.cache_blocks_free == start and status.num_running == 0 and
                    status.num_waiting == 0)

        def holding_blocks():
            return client.status().cache_blocks_free < start

        long_prompt = list(range(2, 202))  # 200 tokens: 4 blocks before any output

        def cancel_mid_stream():
            call = client.stream(request(long_prompt, 3000), timeout=120)
            received = 0
            for chunk in call:
                received += len(chunk.token_ids)
                if received >= 5:
                    break
            wait_for(holding_blocks, 5, "the request to hold blocks")
            call.cancel()
            assert call.code() == grpc.StatusCode.CANCELLED, call.code()
            wait_for(idle_and_whole, 5, "blocks back after cancel")
            print(f"  cancelled after {received} tokens; free blocks back to {start}")

        def cancel_while_queued():
            running = client.stream(request(long_prompt, 3000), timeout=120)
            next(iter(running))  # the first one runs
            queued = client.stream(request([5, 6, 7], 10), timeout=120)
            wait_for(lambda: client.status().num_waiting == 1, 5, "the second to wait")
            queued.cancel()
            wait_for(lambda: client.status().num_waiting == 0, 5, "the queue to empty")
            running.cancel()
            wait_for(idle_and_whole, 5, "blocks back after two cancels")

        def deadline_mid_stream():
            # A deadline well past this build's time to first token (sanitizer builds are slow).
            t0 = time.monotonic()
            probe = client.stream(request(long_prompt, 3000), timeout=120)
            next(iter(probe))
            probe.cancel()
            deadline = 1.0 + 3 * (time.monotonic() - t0)
            wait_for(idle_and_whole, 5, "blocks back after the probe")
            call = client.stream(request(long_prompt, 3000), timeout=deadline)
            received = []
            try:
                for chunk in call:
                    received.extend(chunk.token_ids)
                raise AssertionError("the stream should end with DEADLINE_EXCEEDED")
            except grpc.RpcError as error:
                assert error.code() == grpc.StatusCode.DEADLINE_EXCEEDED, error
            assert received, "some tokens should arrive before the deadline"
            wait_for(idle_and_whole, 5, "blocks back after the deadline")
            print(f"  deadline {deadline:.2f} s hit after {len(received)} tokens; free blocks back "
                  f"to {start}")

        def deadline_while_queued():
            running = client.stream(request(long_prompt, 3000), timeout=120)
            next(iter(running))
            t0 = time.monotonic()
            try:
                client.generate(request([5, 6, 7], 10), timeout=0.5)
                raise AssertionError("the queued request should miss its deadline")
            except grpc.RpcError as error:
                assert error.code() == grpc.StatusCode.DEADLINE_EXCEEDED, error
            wait_for(lambda: client.status().num_waiting == 0, 5, "the expired one to leave")
            print(f"  queued request expired after {time.monotonic() - t0:.2f} s")
            running.cancel()
            wait_for(idle_and_whole, 5, "blocks back")

        def many_cancels_at_once():
            calls = [client.stream(request(long_prompt[:50 + i], 2000), timeout=120)
                     for i in range(8)]
            for call in calls[:1]:
                next(iter(call))
            threads = [threading.Thread(target=call.cancel) for call in calls]
            for t in threads:
                t.start()
            for t in threads:
                t.join(timeout=10)
            wait_for(idle_and_whole, 10, "blocks back after 8 cancels")

        def still_serves():
            tokens, last = client.generate(request([1, 2, 3], 8))
            assert len(tokens) == 8 and last.finish_reason == pb.FINISH_REASON_LENGTH, last
            wait_for(idle_and_whole, 5, "blocks back")

        return run_checks([cancel_mid_stream, cancel_while_queued, deadline_mid_stream,
                           deadline_while_queued, many_cancels_at_once, still_serves])


if __name__ == "__main__":
    sys.exit(main())
