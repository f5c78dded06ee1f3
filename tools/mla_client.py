#!/usr/bin/python3
"""mla_client: a small command-line client of mla.v1.Inference (python3-grpcio + protobuf).

    tools/mla_client.py --server=localhost:PORT --prompt=5,6,7,8 --max_tokens=24 \
        [--temperature=0.7 --top_p=0.9 --top_k=40 --seed=1] [--ignore_eos] [--info] [--status]

Streams one generation, printing each chunk's tokens as they arrive, then a line
"tokens: a,b,c" with all of them and "finish: REASON". --info and --status print GetModelInfo
and GetClusterStatus instead. The generated message modules come from the build tree:
--python_dir (default: $MLA_BIN_DIR/python, else build/python). Exits non-zero on any error.
"""

import argparse
import os
import sys

import grpc


def load_messages(python_dir):
    """Imports mla.v1.inference_pb2 from the build tree's generated modules."""
    sys.path.insert(0, python_dir)
    from mla.v1 import inference_pb2  # noqa: E402
    return inference_pb2


class InferenceClient:
    """mla.v1.Inference over one channel, without generated stubs."""

    def __init__(self, channel, pb):
        self.pb = pb
        self._generate = channel.unary_stream(
            "/mla.v1.Inference/Generate",
            request_serializer=pb.GenerateRequest.SerializeToString,
            response_deserializer=pb.GenerateResponse.FromString)
        self._model_info = channel.unary_unary(
            "/mla.v1.Inference/GetModelInfo",
            request_serializer=pb.GetModelInfoRequest.SerializeToString,
            response_deserializer=pb.ModelInfo.FromString)
        self._cluster_status = channel.unary_unary(
            "/mla.v1.Inference/GetClusterStatus",
            request_serializer=pb.GetClusterStatusRequest.SerializeToString,
            response_deserializer=pb.ClusterStatus.FromString)

    def generate(self, request, timeout=None):
        """Returns the response stream (an iterator that is also a grpc.Call)."""
        return self._generate(request, timeout=timeout)

    def model_info(self, timeout=10):
        return self._model_info(self.pb.GetModelInfoRequest(), timeout=timeout)

    def cluster_status(self, timeout=10):
        return self._cluster_status(self.pb.GetClusterStatusRequest(), timeout=timeout)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", required=True, help="coordinator host:port")
    parser.add_argument("--prompt", default="0", help="comma-separated token ids")
    parser.add_argument("--max_tokens", type=int, default=16)
    parser.add_argument("--temperature", type=float, default=0.0)
    parser.add_argument("--top_p", type=float, default=0.0)
    parser.add_argument("--top_k", type=int, default=0)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--ignore_eos", action="store_true")
    parser.add_argument("--timeout", type=float, default=120.0, help="deadline in seconds")
    parser.add_argument("--info", action="store_true", help="print GetModelInfo and exit")
    parser.add_argument("--status", action="store_true", help="print GetClusterStatus and exit")
    parser.add_argument("--python_dir", default=os.path.join(
        os.environ.get("MLA_BIN_DIR", "build"), "python"))
    args = parser.parse_args()

    pb = load_messages(args.python_dir)
    with grpc.insecure_channel(args.server) as channel:
        client = InferenceClient(channel, pb)
        try:
            if args.info or args.status:
                print(client.model_info() if args.info else client.cluster_status())
                return 0
            sampling = pb.SamplingParams(temperature=args.temperature, top_p=args.top_p,
                                         top_k=args.top_k)
            if args.seed is not None:
                sampling.seed = args.seed
            request = pb.GenerateRequest(
                prompt_token_ids=pb.TokenIds(ids=[int(t) for t in args.prompt.split(",")]),
                sampling=sampling, max_tokens=args.max_tokens, ignore_eos=args.ignore_eos)
            tokens, finish = [], None
            for chunk in client.generate(request, timeout=args.timeout):
                tokens.extend(chunk.token_ids)
                print("chunk:", ",".join(map(str, chunk.token_ids)), flush=True)
                if chunk.HasField("finish_reason"):
                    finish = pb.FinishReason.Name(chunk.finish_reason)
            print("tokens:", ",".join(map(str, tokens)))
            print("finish:", finish)
            return 0 if finish is not None else 1
        except grpc.RpcError as error:
            print(f"mla_client: {error.code().name}: {error.details()}", file=sys.stderr)
            return 1


if __name__ == "__main__":
    sys.exit(main())
