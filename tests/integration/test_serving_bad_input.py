"""Bad input never crashes or hangs the coordinator: every malformed request gets
INVALID_ARGUMENT naming the field and its allowed range; a full queue gets RESOURCE_EXHAUSTED; a
coordinator without its workers reports NOT_SERVING (grpc.health.v1) and answers UNAVAILABLE,
then SERVING once its worker is ready; server reflection lists the services. The server keeps
serving after all of it.
"""

import math
import sys

import grpc

from serving_harness import Cluster, pb, request, run_checks, wait_for

VOCAB, CONTEXT = 1024, 5120


def expect_error(client, req, code, *fragments, timeout=30):
    try:
        client.generate(req, timeout=timeout)
    except grpc.RpcError as error:
        assert error.code() == code, f"{error.code()} {error.details()!r}, expected {code}"
        for fragment in fragments:
            assert fragment in error.details(), f"{fragment!r} not in {error.details()!r}"
        return error.details()
    raise AssertionError(f"expected {code}, the request succeeded")


def main():
    with Cluster(extra_flags=["--max_num_seqs=1", "--max_waiting=1"]) as cluster:
        client = cluster.client

        def not_serving_before_workers():
            wait_for(lambda: client.health() == "NOT_SERVING", 10, "health NOT_SERVING")
            assert client.health("mla.v1.Inference") == "NOT_SERVING"
            details = expect_error(client, request([1, 2], 4), grpc.StatusCode.UNAVAILABLE,
                                   "rank 0")
            print(f"  before workers: UNAVAILABLE {details!r}")
            cluster.start_worker()
            cluster.wait_serving()
            assert client.health("mla.v1.Inference") == "SERVING"

        invalid = grpc.StatusCode.INVALID_ARGUMENT
        cases = [
            ("empty prompt", request([], 4), ["prompt_token_ids", "empty", "between 1 and"]),
            ("no input at all", pb.GenerateRequest(max_tokens=4), ["prompt_token_ids"]),
            # prompt_text is encoded now (test_http_grpc_text.py); its encoding is checked too.
            ("prompt_text too long", pb.GenerateRequest(prompt_text="hello " * 6000, max_tokens=4),
             ["prompt_token_ids", "at most 5119"]),
            ("token id -1", request([3, -1, 4], 4), ["prompt_token_ids[1]", "[0, 1024)"]),
            ("token id = vocab", request([VOCAB], 4), ["prompt_token_ids[0]", "[0, 1024)"]),
            ("prompt + max_tokens > context", request([1] * 5000, 121),
             ["max_tokens", "[0, 120]", "5120"]),
            ("prompt fills the context", request([1] * CONTEXT, 1),
             ["prompt_token_ids", "at most 5119"]),
            ("negative temperature", request([1], 4, temperature=-0.5),
             ["sampling.temperature", ">= 0"]),
            ("NaN temperature", request([1], 4, temperature=math.nan), ["sampling.temperature"]),
            ("top_p > 1", request([1], 4, top_p=1.5), ["sampling.top_p", "(0, 1]"]),
            ("top_p < 0", request([1], 4, top_p=-0.1), ["sampling.top_p", "(0, 1]"]),
            ("top_k < 0", request([1], 4, top_k=-3), ["sampling.top_k", ">= 0"]),
            ("stop id out of range", request([1], 4, stop_token_ids=[5, 4096]),
             ["stop_token_ids[1]", "[0, 1024)"]),
            ("too many stop ids", request([1], 4, stop_token_ids=[2] * 5000),
             ["stop_token_ids", "at most 1024"]),
            ("long request_id", request([1], 4, request_id="x" * 1000), ["request_id", "256"]),
            # ~6 MB on the wire: past gRPC's default 4 MiB limit, within the server's 64 MiB.
            ("huge prompt", request([1000] * 3_000_000, 4), ["prompt_token_ids", "at most 5119"]),
        ]

        def invalid_arguments():
            for name, req, fragments in cases:
                details = expect_error(client, req, invalid, *fragments)
                print(f"  {name}: INVALID_ARGUMENT {details!r}")

        def proto_defaults_are_accepted():
            tokens, last = client.generate(request([1, 2], 3, top_p=0.0))  # 0 means 1
            assert len(tokens) == 3, tokens
            # (max_tokens 0 = up to the context is checked in test_serving_generate.py.)

        def full_queue_is_resource_exhausted():
            # max_num_seqs=1, max_waiting=1: one runs, one waits, the third is refused.
            running = client.stream(request(list(range(2, 100)), 4000), timeout=120)
            try:
                next(iter(running))
                waiting = client.stream(request([7, 8], 5), timeout=120)
                wait_for(lambda: client.status().num_waiting == 1, 10, "one waiting request")
                details = expect_error(client, request([9], 5),
                                       grpc.StatusCode.RESOURCE_EXHAUSTED, "running or queued")
                print(f"  third request: RESOURCE_EXHAUSTED {details!r}")
            finally:
                running.cancel()
            tokens = [t for chunk in waiting for t in chunk.token_ids]
            assert len(tokens) == 5, tokens

        def reflection_lists_the_services():
            # grpc.reflection.v1alpha with hand-built bytes: ServerReflectionRequest
            # {list_services: ""} is field 7, length-delimited, empty.
            info = client.channel.stream_stream(
                "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
                request_serializer=lambda b: b, response_deserializer=lambda b: b)
            raw = next(iter(info(iter([b"\x3a\x00"]), timeout=10)))
            for service in (b"mla.v1.Inference", b"mla.v1.WorkerControl",
                            b"grpc.health.v1.Health"):
                assert service in raw, raw

        def still_serving():
            assert cluster.coordinator.popen.poll() is None, "the coordinator died"
            tokens, last = client.generate(request([4, 5, 6], 6))
            assert len(tokens) == 6 and last.finish_reason == pb.FINISH_REASON_LENGTH
            wait_for(lambda: client.status().cache_blocks_free == 512, 10, "all blocks free")

        return run_checks([not_serving_before_workers, invalid_arguments,
                           proto_defaults_are_accepted, full_queue_is_resource_exhausted,
                           reflection_lists_the_services, still_serving])


if __name__ == "__main__":
    sys.exit(main())
