"""Overload: 10,000 queued requests, bounded memory, RESOURCE_EXHAUSTED beyond the limit, and no
request waiting forever.

One worker runs 2 sequences at a time (--max_num_seqs=2) of long requests while a client thread
(one asyncio loop, 4 channels) opens 10,000 more streams: the queue holds them all
(--max_waiting=10000). The coordinator's resident memory (VmRSS from /proc) is read before and
with the queue full, and its growth must stay under RSS_BOUND_MB. Requests beyond the limit get
RESOURCE_EXHAUSTED at once. Queued requests end with DEADLINE_EXCEEDED after --queue_timeout_s
(the server's message names the queue), so every one of them ends with exactly one status;
afterwards the cache is whole and the queue empty.
"""

import asyncio
import sys
import threading
import time

import grpc

from serving_harness import Cluster, pb, request, run_checks, wait_for

QUEUED = 10000
CHANNELS = 4
QUEUE_TIMEOUT_S = 40
RSS_BOUND_MB = 300  # coordinator growth with 10,000 queued streams


def rss_mb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    raise AssertionError("no VmRSS")


def client_thread(port, count, channels, codes, messages):
    """One asyncio loop (grpc.aio supports one per process) driving `count` streams over
    `channels` channels."""
    async def main():
        chans = [grpc.aio.insecure_channel(f"127.0.0.1:{port}") for _ in range(channels)]
        calls = [ch.unary_stream(
            "/mla.v1.Inference/Generate", request_serializer=pb.GenerateRequest.SerializeToString,
            response_deserializer=pb.GenerateResponse.FromString) for ch in chans]

        async def one(i):
            call = calls[i % channels](request([2 + i % 500, 3, 4], 4),
                                       timeout=QUEUE_TIMEOUT_S + 40)
            try:
                async for _ in call:
                    pass
                codes.append("OK")
            except grpc.aio.AioRpcError as error:
                codes.append(error.code().name)
                messages.append(error.details() or "")

        await asyncio.gather(*(one(i) for i in range(count)))
        for ch in chans:
            await ch.close()

    asyncio.run(main())


def ten_thousand_queued_requests():
    flags = ["--max_waiting=10000", "--max_num_seqs=2", f"--queue_timeout_s={QUEUE_TIMEOUT_S}",
             "--max_num_batched_tokens=64"]
    with Cluster(num_cache_blocks=160, extra_flags=flags) as c:
        c.start_worker()
        c.wait_serving(timeout=60)
        pid = c.coordinator.popen.pid
        # Two long requests hold both running slots: everything after them queues.
        long_calls = [c.client.stream(request(list(range(2, 30)), 5000), timeout=300)
                      for _ in range(2)]
        for call in long_calls:
            next(iter(call))
        rss_before = rss_mb(pid)
        codes, messages = [], []
        t0 = time.monotonic()
        threads = [threading.Thread(target=client_thread, args=(c.port, QUEUED, CHANNELS, codes,
                                                                 messages), daemon=True)]
        for t in threads:
            t.start()
        wait_for(lambda: c.client.status().num_waiting >= QUEUED, QUEUE_TIMEOUT_S - 5,
                 f"{QUEUED} queued requests", interval=0.5)
        t_fill = time.monotonic() - t0
        rss_full = rss_mb(pid)
        status = c.client.status()
        print(f"  {status.num_waiting} queued + {status.num_running} running after"
              f" {t_fill:.1f} s; coordinator RSS {rss_before:.0f} MiB -> {rss_full:.0f} MiB"
              f" (+{rss_full - rss_before:.0f} MiB, bound {RSS_BOUND_MB} MiB)")
        assert rss_full - rss_before < RSS_BOUND_MB

        worst, details = 0.0, ""
        for i in range(50):
            t = time.monotonic()
            try:
                c.client.generate(request([5, 6, 7], 4), timeout=10)
                raise AssertionError("a request beyond the limit was accepted")
            except grpc.RpcError as error:
                assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, error
                worst = max(worst, time.monotonic() - t)
                details = error.details()
        print(f"  50 requests beyond the limit: RESOURCE_EXHAUSTED, slowest in {worst * 1000:.0f}"
              f" ms: {details!r}")
        assert worst < 1.0, worst

        for t in threads:
            t.join(QUEUE_TIMEOUT_S + 45)
            assert not t.is_alive(), "a client thread hung"
        t_all = time.monotonic() - t0
        counts = {code: codes.count(code) for code in set(codes)}
        assert len(codes) == QUEUED, (len(codes), counts)
        assert set(counts) <= {"OK", "DEADLINE_EXCEEDED"}, counts
        queue_msgs = sum(1 for m in messages if "queue" in m)
        print(f"  all {QUEUED} ended within {t_all:.1f} s: {counts}; {queue_msgs} with the"
              f" server's queue-timeout message")
        assert queue_msgs > 0
        for call in long_calls:
            call.cancel()
        wait_for(lambda: (lambda s: s.num_waiting == 0 and s.num_running == 0 and
                          s.cache_blocks_free == 160)(c.client.status()), 20, "idle, cache whole")
        rss_after = rss_mb(pid)
        print(f"  idle again: RSS {rss_after:.0f} MiB")


if __name__ == "__main__":
    sys.exit(run_checks([ten_thousand_queued_requests]))
