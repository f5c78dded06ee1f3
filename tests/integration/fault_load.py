"""A steady load of concurrent streams for the fault tests (worker kill, SIGSTOP, coordinator
restart): each client thread sends one streaming request after another and records, per request,
its start and end times, its final status code and the number of final chunks it saw. The checks
at the end: every request got exactly one final status from the allowed set, none hung (a stream
that outlives its client deadline shows up as DEADLINE_EXCEEDED, which is not allowed), and the
streams in flight at each fault ended within the stated bound.
"""

import random
import threading
import time

import grpc

from serving_harness import pb, request


class Load:
    def __init__(self, client, threads, seed, stream_timeout=30.0, max_tokens=(4, 24)):
        self.client = client
        self.records = []
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.stream_timeout = stream_timeout
        self.max_tokens = max_tokens
        self.threads = [threading.Thread(target=self._run, args=(seed * 1000 + i,), daemon=True)
                        for i in range(threads)]

    def start(self):
        for t in self.threads:
            t.start()
        return self

    def finish(self, timeout=60):
        self.stop.set()
        for t in self.threads:
            t.join(timeout)
            assert not t.is_alive(), "a client thread hung"

    def _run(self, seed):
        rng = random.Random(seed)
        while not self.stop.is_set():
            prompt = [rng.randrange(2, 1000) for _ in range(rng.choice([3, 17, 64, 65]))]
            rec = {"start": time.monotonic(), "end": None, "code": None, "finals": 0,
                   "tokens": 0, "details": ""}
            with self.lock:
                self.records.append(rec)
            try:
                call = self.client.stream(request(prompt, rng.randint(*self.max_tokens)),
                                          timeout=self.stream_timeout)
                for chunk in call:
                    rec["tokens"] += len(chunk.token_ids)
                    if chunk.finish_reason != pb.FINISH_REASON_UNSPECIFIED:
                        rec["finals"] += 1
                rec["code"] = "OK"
            except grpc.RpcError as error:
                rec["code"] = error.code().name
                rec["details"] = error.details() or ""
            rec["end"] = time.monotonic()
            if rec["code"] != "OK":
                time.sleep(0.1)  # not serving: do not spin

    def snapshot(self):
        with self.lock:
            return list(self.records)

    def ok_since(self, t):
        return sum(1 for r in self.snapshot() if r["code"] == "OK" and r["start"] >= t)

    def in_flight_at(self, t):
        return [r for r in self.snapshot() if r["start"] < t and (r["end"] is None or r["end"] > t)]

    def check(self, faults, bound_s, allowed=("OK", "UNAVAILABLE")):
        """faults: monotonic times of the injected faults. Returns a summary dict."""
        records = self.snapshot()
        bad = [r for r in records if r["code"] not in allowed]
        assert not bad, f"{len(bad)} requests ended otherwise, e.g. {bad[0]}"
        doubles = [r for r in records if r["code"] == "OK" and r["finals"] != 1]
        assert not doubles, f"OK streams without exactly one final chunk: {doubles[:3]}"
        worst = 0.0
        affected = 0
        for t in faults:
            for r in records:
                if r["start"] < t < r["end"] and r["code"] == "UNAVAILABLE":
                    affected += 1
                    worst = max(worst, r["end"] - t)
        assert worst < bound_s, f"a stream in flight at a fault ended {worst:.2f} s after it"
        return {"requests": len(records),
                "ok": sum(1 for r in records if r["code"] == "OK"),
                "unavailable": sum(1 for r in records if r["code"] == "UNAVAILABLE"),
                "affected": affected, "worst_end_s": worst}
