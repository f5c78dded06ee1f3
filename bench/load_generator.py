#!/usr/bin/python3
"""load_generator: a serving benchmark for mla.v1.Inference (python3-grpcio + protobuf).

Sends --num_requests generations from --concurrency client threads (each thread keeps one
stream open at a time), prompt and output lengths drawn from distributions, and reports:
  TTFT (send -> first token) and inter-token latency (gap between successive tokens of a stream;
  tokens that arrive in one chunk count as 0) at p50 and p99, output tokens/s and requests/s over
  the run's wall time, and the coordinator's CPU time per step, two ways: its step loop's thread
  (GetClusterStatus.step_loop_cpu_seconds / num_steps) and the whole process (/proc/PID/stat
  utime + stime, when the coordinator runs on this host).

  # against a running coordinator (give its pid for the /proc figure):
  bench/load_generator.py --server=localhost:PORT [--coordinator_pid=PID] ...
  # or start a coordinator and one worker on a checkpoint first, and stop them after:
  bench/load_generator.py --launch --bin_dir=build --checkpoint=/tmp/tiny ...

Length distributions: "fixed:N", "uniform:LO:HI" (inclusive), "lognormal:MEDIAN:SIGMA" (rounded,
clamped to >= 1). Prompts are random token ids from [2, vocab). Greedy unless --temperature.
"""

import argparse
import json
import math
import os
import queue
import random
import subprocess
import sys
import threading
import time

import grpc


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--server", help="coordinator host:port (unless --launch)")
    p.add_argument("--coordinator_pid", type=int, default=0, help="for the /proc CPU figure")
    p.add_argument("--launch", action="store_true", help="start a coordinator and one worker")
    p.add_argument("--bin_dir", default=os.environ.get("MLA_BIN_DIR", "build"))
    p.add_argument("--checkpoint", default=os.environ.get("MLA_TINY_CHECKPOINT", ""))
    p.add_argument("--coordinator_flags", default="", help="extra flags with --launch")
    p.add_argument("--num_requests", type=int, default=256)
    p.add_argument("--concurrency", type=int, default=32)
    p.add_argument("--prompt_len", default="uniform:16:512")
    p.add_argument("--output_len", default="uniform:16:128")
    p.add_argument("--temperature", type=float, default=0.0)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--timeout", type=float, default=600, help="per-request deadline, s")
    p.add_argument("--json", help="also write the numbers to this file")
    return p.parse_args()


def sampler(spec, rng):
    kind, *params = spec.split(":")
    if kind == "fixed":
        return lambda: int(params[0])
    if kind == "uniform":
        lo, hi = int(params[0]), int(params[1])
        return lambda: rng.randint(lo, hi)
    if kind == "lognormal":
        median, sigma = float(params[0]), float(params[1])
        return lambda: max(1, round(rng.lognormvariate(math.log(median), sigma)))
    raise SystemExit(f"unknown length distribution {spec!r}")


def percentile(values, q):
    if not values:
        return float("nan")
    values = sorted(values)
    k = (len(values) - 1) * q
    lo, hi = math.floor(k), math.ceil(k)
    return values[lo] + (values[hi] - values[lo]) * (k - lo)


def process_cpu_seconds(pid):
    if not pid:
        return None
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime
    except OSError:
        return None


class Launched:
    """A coordinator and one worker started for the run."""

    def __init__(self, args):
        coordinator = os.path.join(args.bin_dir, "coordinator", "mla-coordinator")
        worker = os.path.join(args.bin_dir, "worker", "mla-worker")
        self.coordinator = subprocess.Popen(
            [coordinator, f"--checkpoint={args.checkpoint}", "--port=0", "--address=127.0.0.1",
             *args.coordinator_flags.split()], stdout=subprocess.PIPE, text=True)
        self.worker = None
        try:
            line = self.coordinator.stdout.readline()
            if not line.startswith("listening on "):
                raise SystemExit(f"mla-coordinator did not start: {line!r}")
            self.port = int(line.split()[2])
            self.worker = subprocess.Popen(
                [worker, f"--coordinator=127.0.0.1:{self.port}", f"--checkpoint={args.checkpoint}",
                 "--connect_timeout_s=10"])
        except BaseException:
            self.stop()
            raise

    def stop(self):
        for p in (self.coordinator, self.worker):
            if p is not None and p.poll() is None:
                p.terminate()
        for p in (self.coordinator, self.worker):
            if p is not None:
                try:
                    p.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    p.kill()


def run(args, server, pid):
    sys.path.insert(0, os.path.join(args.bin_dir, "python"))
    from mla.v1 import inference_pb2 as pb

    channel = grpc.insecure_channel(server)
    generate = channel.unary_stream(
        "/mla.v1.Inference/Generate", request_serializer=pb.GenerateRequest.SerializeToString,
        response_deserializer=pb.GenerateResponse.FromString)
    status = channel.unary_unary(
        "/mla.v1.Inference/GetClusterStatus",
        request_serializer=pb.GetClusterStatusRequest.SerializeToString,
        response_deserializer=pb.ClusterStatus.FromString)
    info = channel.unary_unary(
        "/mla.v1.Inference/GetModelInfo",
        request_serializer=pb.GetModelInfoRequest.SerializeToString,
        response_deserializer=pb.ModelInfo.FromString)
    deadline = time.monotonic() + 60
    while not status(pb.GetClusterStatusRequest(), timeout=10).serving:
        if time.monotonic() > deadline:
            raise SystemExit("the coordinator is not serving after 60 s")
        time.sleep(0.1)
    model = info(pb.GetModelInfoRequest(), timeout=10)

    rng = random.Random(args.seed)
    prompt_len, output_len = sampler(args.prompt_len, rng), sampler(args.output_len, rng)
    work = queue.Queue()
    for i in range(args.num_requests):
        n_out = output_len()
        n_in = min(prompt_len(), model.max_context_len - n_out)
        prompt = [rng.randrange(2, model.vocab_size) for _ in range(max(1, n_in))]
        sampling = pb.SamplingParams(temperature=args.temperature, seed=args.seed + i)
        work.put(pb.GenerateRequest(prompt_token_ids=pb.TokenIds(ids=prompt), sampling=sampling,
                                    max_tokens=n_out, ignore_eos=True))
    ttft, itl, errors = [], [], []
    totals = {"tokens": 0, "prompt_tokens": 0, "requests": 0}
    lock = threading.Lock()

    def client():
        while True:
            try:
                request = work.get_nowait()
            except queue.Empty:
                return
            sent = time.monotonic()
            arrivals = []
            try:
                for chunk in generate(request, timeout=args.timeout):
                    now = time.monotonic()
                    arrivals.extend([now] * len(chunk.token_ids))
            except grpc.RpcError as error:
                with lock:
                    errors.append(f"{error.code().name}: {error.details()}")
                continue
            with lock:
                if arrivals:
                    ttft.append(arrivals[0] - sent)
                    itl.extend(b - a for a, b in zip(arrivals, arrivals[1:]))
                totals["tokens"] += len(arrivals)
                totals["prompt_tokens"] += len(request.prompt_token_ids.ids)
                totals["requests"] += 1

    before = status(pb.GetClusterStatusRequest(), timeout=10)
    cpu_before = process_cpu_seconds(pid)
    start = time.monotonic()
    threads = [threading.Thread(target=client) for _ in range(args.concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.monotonic() - start
    after = status(pb.GetClusterStatusRequest(), timeout=10)
    cpu_after = process_cpu_seconds(pid)
    channel.close()

    steps = max(1, after.num_steps - before.num_steps)
    result = {
        "requests": totals["requests"], "errors": len(errors), "concurrency": args.concurrency,
        "prompt_len": args.prompt_len, "output_len": args.output_len,
        "wall_s": wall, "prompt_tokens": totals["prompt_tokens"],
        "output_tokens": totals["tokens"], "output_tokens_per_s": totals["tokens"] / wall,
        "requests_per_s": totals["requests"] / wall,
        "ttft_p50_ms": 1e3 * percentile(ttft, 0.5), "ttft_p99_ms": 1e3 * percentile(ttft, 0.99),
        "itl_p50_ms": 1e3 * percentile(itl, 0.5), "itl_p99_ms": 1e3 * percentile(itl, 0.99),
        "steps": steps, "tokens_per_step": totals["tokens"] / steps,
        "preemptions": after.num_preemptions - before.num_preemptions,
        "step_loop_cpu_us_per_step":
            1e6 * (after.step_loop_cpu_seconds - before.step_loop_cpu_seconds) / steps,
        "process_cpu_us_per_step":
            None if cpu_before is None or cpu_after is None
            else 1e6 * (cpu_after - cpu_before) / steps,
    }
    return result, errors


def main():
    args = parse_args()
    launched = None
    try:
        if args.launch:
            if not args.checkpoint:
                raise SystemExit("--launch needs --checkpoint")
            launched = Launched(args)
            server, pid = f"127.0.0.1:{launched.port}", launched.coordinator.pid
        else:
            if not args.server:
                raise SystemExit("give --server=HOST:PORT or --launch")
            server, pid = args.server, args.coordinator_pid
        result, errors = run(args, server, pid)
    finally:
        if launched is not None:
            launched.stop()
    for e in errors[:5]:
        print("error:", e, file=sys.stderr)
    r = result
    print(f"{r['requests']} requests ({r['errors']} errors), concurrency {r['concurrency']}, "
          f"prompt {r['prompt_len']}, output {r['output_len']}")
    print(f"wall {r['wall_s']:.2f} s: {r['output_tokens_per_s']:.1f} output tokens/s, "
          f"{r['requests_per_s']:.2f} requests/s ({r['prompt_tokens']} prompt + "
          f"{r['output_tokens']} output tokens)")
    print(f"TTFT p50 {r['ttft_p50_ms']:.1f} ms, p99 {r['ttft_p99_ms']:.1f} ms; "
          f"inter-token p50 {r['itl_p50_ms']:.2f} ms, p99 {r['itl_p99_ms']:.2f} ms")
    process = r["process_cpu_us_per_step"]
    print(f"{r['steps']} steps ({r['tokens_per_step']:.1f} output tokens/step, "
          f"{r['preemptions']} preemptions); coordinator CPU per step: step loop "
          f"{r['step_loop_cpu_us_per_step']:.1f} us, whole process "
          + ("n/a" if process is None else f"{process:.1f} us"))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
