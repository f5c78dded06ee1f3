"""Text over gRPC: prompt_text is encoded by the coordinator's tokenizer and every response
carries its text delta. A Node client (@grpc/grpc-js with the proto loaded at run time) streams
the same generation as Python's grpcio, token for token and character for character; the C++
mla-client streams text and reports tokens/s, and exits non-zero with the server's message on
an error. Without tokenizer.json in the checkpoint, prompt_text is FAILED_PRECONDITION.
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile

import grpc

from http_harness import SOURCE_DIR, ensure_node_modules, run_node
from serving_harness import BIN_DIR, CHECKPOINT, Cluster, pb, run_checks

CLIENT = os.path.join(BIN_DIR, "tools", "mla-client")


def text_request(text, max_tokens, **fields):
    return pb.GenerateRequest(prompt_text=text, max_tokens=max_tokens, ignore_eos=True,
                              sampling=pb.SamplingParams(temperature=0.0), **fields)


def main():
    ensure_node_modules()
    with Cluster() as cluster:
        cluster.start_worker()
        cluster.wait_serving()
        client = cluster.client

        def python_text_stream():
            chunks = list(client.stream(text_request("The capital of France is", 16)))
            tokens = [t for c in chunks for t in c.token_ids]
            text = "".join(c.text for c in chunks)
            assert len(tokens) == 16, tokens
            assert text, chunks
            assert chunks[-1].usage.prompt_tokens > 1, chunks[-1]
            print(f"  {len(chunks)} chunks: {text!r}")

        def node_grpc_client():
            out = run_node("grpc_client_test.mjs",
                           {"MLA_GRPC_ADDRESS": f"127.0.0.1:{cluster.port}",
                            "MLA_SOURCE_DIR": SOURCE_DIR}, timeout=300)
            node = json.loads(out.strip().splitlines()[-1])
            chunks = list(client.stream(text_request("The capital of France is", 16)))
            assert node["token_ids"] == [t for c in chunks for t in c.token_ids], node
            assert node["text"] == "".join(c.text for c in chunks), node

        def mla_client_streams_text():
            result = subprocess.run([CLIENT, f"--address=127.0.0.1:{cluster.port}",
                                     "--prompt=Hello world", "--max_tokens=12", "--ignore_eos",
                                     "--temperature=0.7", "--top_p=0.9", "--seed=5"],
                                    capture_output=True, text=True, timeout=120)
            assert result.returncode == 0, result.stderr
            assert "tokens/s" in result.stderr and "12 tokens" in result.stderr, result.stderr
            chunks = list(client.stream(pb.GenerateRequest(
                prompt_text="Hello world", max_tokens=12, ignore_eos=True,
                sampling=pb.SamplingParams(temperature=0.7, top_p=0.9, seed=5))))
            assert result.stdout[:-1] == "".join(c.text for c in chunks), result.stdout
            ids = subprocess.run([CLIENT, f"--address=127.0.0.1:{cluster.port}",
                                  "--prompt_ids=5,6,7", "--max_tokens=4", "--ignore_eos"],
                                 capture_output=True, text=True, timeout=120)
            assert ids.returncode == 0, ids.stderr
            want = [t for c in client.stream(pb.GenerateRequest(
                prompt_token_ids=pb.TokenIds(ids=[5, 6, 7]), max_tokens=4, ignore_eos=True))
                    for t in c.token_ids]
            assert [int(t) for t in ids.stdout.split()] == want, (ids.stdout, want)
            assert "text: " in ids.stderr, ids.stderr
            print(f"  {result.stderr.strip()}")

        def mla_client_reports_errors():
            result = subprocess.run([CLIENT, f"--address=127.0.0.1:{cluster.port}",
                                     "--prompt_ids=5,6,7", "--max_tokens=100000"],
                                    capture_output=True, text=True, timeout=120)
            assert result.returncode != 0, result
            assert "max_tokens" in result.stderr, result.stderr
            print(f"  {result.stderr.strip()}")

        def chat_over_grpc():
            chat = pb.ChatMessages(messages=[pb.ChatMessage(role="system", content="Be brief."),
                                             pb.ChatMessage(role="user", content="Say hello.")])
            chunks = list(client.stream(pb.GenerateRequest(
                chat=chat, max_tokens=6, ignore_eos=True,
                sampling=pb.SamplingParams(temperature=0.0))))
            assert sum(len(c.token_ids) for c in chunks) == 6, chunks
            print(f"  chat: {''.join(c.text for c in chunks)!r}, "
                  f"prompt {chunks[-1].usage.prompt_tokens} tokens")
            try:
                list(client.stream(pb.GenerateRequest(
                    chat=pb.ChatMessages(messages=[pb.ChatMessage(role="robot", content="x")]),
                    max_tokens=2)))
            except grpc.RpcError as error:
                assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, error
            else:
                raise AssertionError("role robot was accepted")

        checks = [python_text_stream, chat_over_grpc, node_grpc_client, mla_client_streams_text,
                  mla_client_reports_errors]
        failures = run_checks(checks)

    no_tokenizer = tempfile.mkdtemp(prefix="mla_no_tokenizer_")
    try:
        for name in os.listdir(CHECKPOINT):
            if not name.startswith("tokenizer"):
                os.symlink(os.path.join(CHECKPOINT, name), os.path.join(no_tokenizer, name))
        with Cluster(extra_flags=[f"--checkpoint={no_tokenizer}"]) as cluster:
            cluster.start_worker()
            cluster.wait_serving()

            def prompt_text_without_tokenizer():
                try:
                    list(cluster.client.stream(text_request("hello", 4)))
                except grpc.RpcError as error:
                    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION, error
                    assert "no tokenizer" in error.details(), error.details()
                    print(f"  {error.code().name}: {error.details()}")
                else:
                    raise AssertionError("prompt_text was accepted without a tokenizer")
                tokens, last = cluster.client.generate(pb.GenerateRequest(
                    prompt_token_ids=pb.TokenIds(ids=[5, 6]), max_tokens=3, ignore_eos=True))
                assert len(tokens) == 3 and last.text == "", last

            failures |= run_checks([prompt_text_without_tokenizer])
    finally:
        shutil.rmtree(no_tokenizer, ignore_errors=True)
    return failures


if __name__ == "__main__":
    sys.exit(main())
