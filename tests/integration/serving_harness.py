"""Shared helpers of the serving tests: start mla-coordinator and mla-worker processes on
loopback, talk to them with python3-grpcio and the protoc-generated messages, and compare with
the in-process mla-generate.

Environment (set by CTest): MLA_BIN_DIR (build dir: coordinator/mla-coordinator,
worker/mla-worker, tools/mla-generate, python/ with the generated *_pb2 modules) and
MLA_TINY_CHECKPOINT (the tiny checkpoint directory).

Every process is started through Cluster, which kills whatever is still running when its
`with` block ends; every wait has a timeout.
"""

import importlib.util
import os
import queue
import signal
import subprocess
import sys
import tempfile
import threading
import time

import grpc

BIN_DIR = os.environ.get("MLA_BIN_DIR", "build")
CHECKPOINT = os.environ.get("MLA_TINY_CHECKPOINT", "")
COORDINATOR = os.path.join(BIN_DIR, "coordinator", "mla-coordinator")
WORKER = os.path.join(BIN_DIR, "worker", "mla-worker")
GENERATE = os.path.join(BIN_DIR, "tools", "mla-generate")
PYTHON_DIR = os.path.join(BIN_DIR, "python")

sys.path.insert(0, PYTHON_DIR)
from mla.v1 import inference_pb2 as pb  # noqa: E402


def _load_health():
    # Loaded by path: a "grpc" directory on sys.path would clash with the grpc package.
    path = os.path.join(PYTHON_DIR, "grpc", "health", "v1", "health_pb2.py")
    spec = importlib.util.spec_from_file_location("mla_test_health_pb2", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


health_pb = _load_health()


class Client:
    """mla.v1.Inference and grpc.health.v1.Health on one channel."""

    def __init__(self, port, host="127.0.0.1", channel=None):
        # channel: e.g. a grpc.secure_channel (the security tests); default plaintext.
        self.channel = channel or grpc.insecure_channel(f"{host}:{port}")
        self._generate = self.channel.unary_stream(
            "/mla.v1.Inference/Generate", request_serializer=pb.GenerateRequest.SerializeToString,
            response_deserializer=pb.GenerateResponse.FromString)
        self._status = self.channel.unary_unary(
            "/mla.v1.Inference/GetClusterStatus",
            request_serializer=pb.GetClusterStatusRequest.SerializeToString,
            response_deserializer=pb.ClusterStatus.FromString)
        self._info = self.channel.unary_unary(
            "/mla.v1.Inference/GetModelInfo",
            request_serializer=pb.GetModelInfoRequest.SerializeToString,
            response_deserializer=pb.ModelInfo.FromString)
        self._health = self.channel.unary_unary(
            "/grpc.health.v1.Health/Check",
            request_serializer=health_pb.HealthCheckRequest.SerializeToString,
            response_deserializer=health_pb.HealthCheckResponse.FromString)

    def close(self):
        self.channel.close()

    def stream(self, request, timeout=120):
        return self._generate(request, timeout=timeout)

    def generate(self, request, timeout=120):
        """Runs one request to its end: (tokens, final chunk). Raises grpc.RpcError."""
        tokens, last = [], None
        for chunk in self._generate(request, timeout=timeout):
            tokens.extend(chunk.token_ids)
            last = chunk
        return tokens, last

    def status(self):
        return self._status(pb.GetClusterStatusRequest(), timeout=10)

    def info(self):
        return self._info(pb.GetModelInfoRequest(), timeout=10)

    def health(self, service=""):
        """The health status name (SERVING, NOT_SERVING, ...)."""
        response = self._health(health_pb.HealthCheckRequest(service=service), timeout=10)
        return health_pb.HealthCheckResponse.ServingStatus.Name(response.status)


def request(prompt, max_tokens, temperature=0.0, top_p=0.0, top_k=0, seed=None,
            ignore_eos=True, **fields):
    sampling = pb.SamplingParams(temperature=temperature, top_p=top_p, top_k=top_k)
    if seed is not None:
        sampling.seed = seed
    return pb.GenerateRequest(prompt_token_ids=pb.TokenIds(ids=prompt), sampling=sampling,
                              max_tokens=max_tokens, ignore_eos=ignore_eos, **fields)


def reference_tokens(prompt, max_tokens, temperature=0.0, top_p=1.0, top_k=0, seed=0,
                     ignore_eos=True, checkpoint=None, device=-1):
    """The in-process generation (mla-generate) of the same request."""
    command = [GENERATE, f"--checkpoint={checkpoint or CHECKPOINT}",
               "--prompt=" + ",".join(map(str, prompt)), f"--max_tokens={max_tokens}",
               f"--temperature={temperature}", f"--top_p={top_p}", f"--top_k={top_k}",
               f"--seed={seed}", f"--device={device}"]
    if ignore_eos:
        command.append("--ignore_eos")
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    if result.returncode != 0:
        raise AssertionError(f"mla-generate failed:\n{result.stderr}")
    line = [l for l in result.stdout.splitlines() if l.startswith("tokens:")][0]
    return [int(t) for t in line[len("tokens:"):].strip().split(",")]


def wait_for(predicate, timeout, what, interval=0.05):
    """Polls predicate() until it returns a truthy value; AssertionError after timeout."""
    deadline = time.monotonic() + timeout
    last_error = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except grpc.RpcError as error:  # e.g. the server is not up yet
            last_error = error
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what} ({last_error})")


class Process:
    """A child process with its stderr in a file (for failure reports and log checks)."""

    def __init__(self, name, command, log_dir):
        self.name = name
        self.log_path = os.path.join(log_dir, f"{name}.log")
        self._log = open(self.log_path, "w")
        self.popen = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=self._log, text=True)
        self.exit_before_kill = None

    def log(self):
        if not self._log.closed:
            self._log.flush()
        with open(self.log_path) as f:
            return f.read()

    def wait(self, timeout):
        return self.popen.wait(timeout=timeout)

    def kill(self):
        self.exit_before_kill = self.popen.poll()
        if self.exit_before_kill is None:
            self.popen.kill()
            self.popen.wait(timeout=10)
        self._log.close()


class Cluster:
    """One mla-coordinator (and workers started on demand), all killed on exit."""

    def __init__(self, tp=1, pp=1, num_cache_blocks=512, extra_flags=(), checkpoint=None):
        self.log_dir = tempfile.mkdtemp(prefix="mla_serving_")
        self.checkpoint = checkpoint or CHECKPOINT
        self.flags = [f"--checkpoint={self.checkpoint}", "--port=0", "--address=127.0.0.1",
                      f"--tp={tp}", f"--pp={pp}", f"--num_cache_blocks={num_cache_blocks}",
                      *extra_flags]
        self.coordinator = None
        self.workers = []
        self.port = None
        self.client = None

    def __enter__(self):
        try:
            self.coordinator = Process("coordinator", [COORDINATOR, *self.flags], self.log_dir)
            self.port = self._read_port(self.coordinator, timeout=30)
            self.client = Client(self.port)
        except BaseException:
            self.__exit__(*sys.exc_info())
            raise
        return self

    def __exit__(self, kind, value, tb):
        if self.client is not None:
            self.client.close()
        for p in [self.coordinator, *self.workers]:
            if p is not None:
                p.kill()
        if kind is not None:
            self.dump_logs()
        return False

    def dump_logs(self):
        for p in [self.coordinator, *self.workers]:
            if p is not None:
                ended = ("still running" if p.exit_before_kill is None
                         else f"had exited with {p.exit_before_kill}")
                print(f"---- {p.name} log ({ended} at the end) ----\n{p.log()}",
                      file=sys.stderr)

    @staticmethod
    def _read_port(process, timeout):
        lines = queue.Queue()
        threading.Thread(target=lambda: lines.put(process.popen.stdout.readline()),
                         daemon=True).start()
        try:
            line = lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"{process.name} printed no port within {timeout} s")
        if not line.startswith("listening on "):
            raise AssertionError(f"{process.name}'s first line is {line!r}:\n{process.log()}")
        return int(line.split()[2])

    def start_worker(self, extra_flags=()):
        name = f"worker{len(self.workers)}"
        command = [WORKER, f"--coordinator=127.0.0.1:{self.port}",
                   f"--checkpoint={self.checkpoint}",
                   "--connect_timeout_s=30", *extra_flags]
        worker = Process(name, command, self.log_dir)
        self.workers.append(worker)
        return worker

    def wait_serving(self, timeout=60):
        wait_for(lambda: self.client.health() == "SERVING", timeout, "health SERVING")

    def terminate_coordinator(self):
        self.coordinator.popen.send_signal(signal.SIGTERM)


def run_checks(checks):
    """Runs named check functions, printing each result; returns the process exit code."""
    failures = 0
    for check in checks:
        start = time.monotonic()
        try:
            check()
            print(f"PASS {check.__name__} ({time.monotonic() - start:.1f} s)", flush=True)
        except Exception as error:  # report every check, then fail
            failures += 1
            print(f"FAIL {check.__name__}: {type(error).__name__}: {error}", flush=True)
    print(f"{len(checks) - failures}/{len(checks)} checks passed")
    return 1 if failures else 0
