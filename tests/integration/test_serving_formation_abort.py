"""A rank lost while its group is still meeting: a tp=2 group whose rank 1 is a fake worker (a
plain WorkerControl stream that registers, takes its Assignment and LoadModel, and never joins the
rendezvous), while rank 0 is a real mla-worker meeting its tp group in the coordinator's store.
When the fake's stream closes, the coordinator abandons that formation's store prefix, so rank 0
stops waiting at once (its load fails naming the abandoned formation) instead of after its 30 s
rendezvous timeout, gets Reset, and the group forms and serves as soon as a real rank 1 arrives.
"""

import os
import queue
import sys
import threading
import time

import grpc

from serving_harness import (PYTHON_DIR, Cluster, reference_tokens, request, run_checks,
                             wait_for)

sys.path.insert(0, PYTHON_DIR)
from mla.v1 import worker_pb2 as wpb  # noqa: E402

BOUND_S = 5.0  # the survivor's wait must end this soon after the loss (its timeout is 30 s)


class FakeWorker:
    """A WorkerControl stream that registers for `rank` and records what the coordinator sends."""

    def __init__(self, port, rank):
        self.channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        connect = self.channel.stream_stream(
            "/mla.v1.WorkerControl/Connect",
            request_serializer=wpb.WorkerMessage.SerializeToString,
            response_deserializer=wpb.CoordinatorMessage.FromString)
        self.outbox = queue.Queue()
        self.outbox.put(wpb.WorkerMessage(register=wpb.Register(
            host="fake", device=-1, pid=os.getpid(), preferred_rank=rank)))
        self.received = []
        self.call = connect(iter(self.outbox.get, None))
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        try:
            for message in self.call:
                self.received.append(message.WhichOneof("msg"))
        except grpc.RpcError:
            pass

    def close(self):
        self.call.cancel()
        self.outbox.put(None)
        self.channel.close()


def survivor_stops_waiting_when_its_peer_is_lost():
    with Cluster(tp=2, extra_flags=["--heartbeat_timeout_s=60"]) as c:
        fake = FakeWorker(c.port, rank=1)
        wait_for(lambda: "rank 1 registered: fake" in c.coordinator.log(), 15, "the fake registered")
        real = c.start_worker(["--rank=0", "--heartbeat_s=0.5"])
        wait_for(lambda: "load_model" in fake.received, 15, "the fake's LoadModel")
        wait_for(lambda: "rank 0 of 2" in real.log(), 15, "rank 0's assignment")
        time.sleep(1.0)  # rank 0 is now waiting in the store for rank 1
        t_lost = time.monotonic()
        fake.close()
        line = wait_for(lambda: next((l for l in real.log().splitlines()
                                      if "failed" in l and "abandoned" in l), None),
                        BOUND_S, "rank 0's load to fail naming the abandoned formation")
        waited = time.monotonic() - t_lost
        print(f"  rank 0 stopped waiting {waited:.2f} s after rank 1 was lost: {line.strip()}")
        wait_for(lambda: "reset:" in real.log(), 10, "rank 0's Reset")
        assert real.popen.poll() is None, "the survivor must stay up"

        c.start_worker(["--rank=1"])
        c.wait_serving(timeout=60)
        prompt = [5, 6, 7, 8]
        tokens, _ = c.client.generate(request(prompt, 6))
        assert tokens == reference_tokens(prompt, 6), tokens
        print(f"  re-formed with a real rank 1 and served {tokens}")


if __name__ == "__main__":
    sys.exit(run_checks([survivor_stops_waiting_when_its_peer_is_lost]))
