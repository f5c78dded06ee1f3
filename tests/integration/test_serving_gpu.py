"""Serving on GPUs: a coordinator and mla-worker --device=N processes on the tiny-mla checkpoint
(the tiny widths with DeepSeek-V3's MLA head dims, which the GPU attention kernels need).

- tp=1 on GPU 0: several concurrent requests (greedy and seeded sampling) stream exactly the
  tokens of the in-process model on the same GPU (mla-generate --device=0).
- tp=2 on GPUs 0-1 and tp=2 x pp=2 on GPUs 0-3 (where that many GPUs exist), over NCCL groups
  that met through the coordinator's store: greedy tokens equal the single-GPU run. Every worker
  records decode steps as CUDA graphs, NCCL collectives included (each worker's log must say
  "step graphs recorded"); and tp=2 with rank 0 run --enforce_eager (op by op) beside a rank
  that replays graphs still gives the same tokens (the ranks' collectives agree in size).
- tp=2 x pp=2 with two workers per GPU where only 2 GPUs exist: ranks (stage, tp rank) on
  GPUs 0,1 / 1,0 ("crossed"), so that every NCCL communicator (both tp groups, both pipeline
  links) still spans two distinct devices, which NCCL requires. It runs the whole 4-worker
  path; only the placement differs from 4 GPUs. The GPU sums
  the row-parallel partials in float32 in NCCL's order, not in float64 as the CPU does, so the
  logits differ from one GPU's in the last bits; a greedy choice flips only where two logits tie
  within that, which the test reports as the first divergence if it happens.

Talks to the coordinator through the C++ mla-client (GPU hosts may lack python3-grpcio).
Skips with a printed reason where no GPU is visible or the build has no CUDA backend.
"""

import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

BIN_DIR = os.environ.get("MLA_BIN_DIR", "build")
COORDINATOR = os.path.join(BIN_DIR, "coordinator", "mla-coordinator")
WORKER = os.path.join(BIN_DIR, "worker", "mla-worker")
GENERATE = os.path.join(BIN_DIR, "tools", "mla-generate")
CLIENT = os.path.join(BIN_DIR, "tools", "mla-client")

# (prompt ids, sampling flags shared by mla-client and mla-generate)
REQUESTS = [([5, 6, 7, 8], []), (list(range(100, 170)), []), ([901], []),
            (list(range(300, 317)), []),
            (list(range(100, 170)), ["--temperature=0.8", "--top_p=0.9", "--seed=7"])]
GREEDY = 4  # the first four
MAX_TOKENS = 12


def gpu_count():
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return 0
    return sum(1 for line in out.stdout.splitlines() if line.startswith("GPU "))


def ids(prompt):
    return ",".join(map(str, prompt))


def reference(checkpoint, prompt, flags):
    """The in-process model on GPU 0 (mla-generate --device=0)."""
    out = subprocess.run([GENERATE, f"--checkpoint={checkpoint}", f"--prompt={ids(prompt)}",
                          f"--max_tokens={MAX_TOKENS}", "--ignore_eos", "--device=0", *flags],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    line = [l for l in out.stdout.splitlines() if l.startswith("tokens:")][0]
    return [int(t) for t in line[len("tokens:"):].split(",")]


class Group:
    """An mla-coordinator and tp x pp mla-worker --device=r processes; killed on exit."""

    def __init__(self, checkpoint, tp, pp, devices, eager=()):
        self.dir = tempfile.mkdtemp(prefix="mla_gpu_serving_")
        self.procs = []
        self.coordinator_log = os.path.join(self.dir, "coordinator.log")
        coordinator = self.start("coordinator", [
            COORDINATOR, f"--checkpoint={checkpoint}", "--port=0", "--address=127.0.0.1",
            f"--tp={tp}", f"--pp={pp}", "--num_cache_blocks=256",
            "--max_num_batched_tokens=256"])
        self.port = int(coordinator.stdout.readline().split()[2])
        for r in range(tp * pp):
            self.start(f"worker{r}", [WORKER, f"--coordinator=127.0.0.1:{self.port}",
                                      f"--checkpoint={checkpoint}", f"--device={devices[r]}",
                                      f"--rank={r}", "--collective_timeout_s=60",
                                      *(["--enforce_eager"] if r in eager else [])])
        deadline = time.monotonic() + 240
        while "serving with" not in self.log("coordinator"):
            assert time.monotonic() < deadline, "not serving after 240 s:\n" + self.logs()
            assert all(p.poll() is None for p in self.procs), "a process exited:\n" + self.logs()
            time.sleep(0.2)

    def start(self, name, command):
        log = open(os.path.join(self.dir, f"{name}.log"), "w")
        p = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=log, text=True)
        p.name = name
        self.procs.append(p)
        return p

    def log(self, name):
        with open(os.path.join(self.dir, f"{name}.log")) as f:
            return f.read()

    def logs(self):
        return "".join(f"---- {p.name} (exit {p.poll()}) ----\n{self.log(p.name)}"
                       for p in self.procs)

    def generate(self, prompt, flags):
        out = subprocess.run([CLIENT, f"--address=127.0.0.1:{self.port}",
                              f"--prompt_ids={ids(prompt)}", f"--max_tokens={MAX_TOKENS}",
                              "--ignore_eos", *flags], capture_output=True, text=True,
                             timeout=300)
        assert out.returncode == 0, out.stderr + self.logs()
        return [int(t) for t in out.stdout.split()]

    def __enter__(self):
        return self

    def __exit__(self, kind, value, tb):
        for p in self.procs:
            if p.poll() is None:
                p.kill()
            p.wait(timeout=30)
        if kind is not None:
            print(self.logs(), file=sys.stderr)
        shutil.rmtree(self.dir, ignore_errors=True)
        return False


def serve(checkpoint, tp, pp, requests, devices=None, eager=()):
    """The tokens of `requests`, sent concurrently to tp x pp GPU workers (rank r on GPU
    devices[r], default r; ranks in `eager` run --enforce_eager). Checks that every other
    worker recorded step graphs."""
    devices = devices or list(range(tp * pp))
    with Group(checkpoint, tp, pp, devices, eager) as g, \
            ThreadPoolExecutor(len(requests)) as pool:
        tokens = list(pool.map(lambda r: g.generate(*r), requests))
        for r in range(tp * pp):
            recorded = "step graphs recorded" in g.log(f"worker{r}")
            assert recorded == (r not in eager), (
                f"worker{r} (--enforce_eager: {r in eager}) recorded step graphs: {recorded}\n"
                + g.logs())
        return tokens


def first_divergence(a, b):
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return i
    return None if len(a) == len(b) else min(len(a), len(b))


def main():
    gpus = gpu_count()
    if gpus == 0:
        print("SKIP: no GPU visible (nvidia-smi -L lists none)")
        return 0
    checkpoint = tempfile.mkdtemp(prefix="mla_tiny_mla_")
    try:
        subprocess.run([os.path.join(BIN_DIR, "tools", "mla-make-checkpoint"),
                        "--preset=tiny-mla", "--seed=3", f"--out={checkpoint}"], check=True,
                       capture_output=True, timeout=300)
        probe = subprocess.run([GENERATE, f"--checkpoint={checkpoint}", "--prompt=1",
                                "--max_tokens=1", "--device=0"], capture_output=True, text=True,
                               timeout=300)
        if "built without CUDA" in probe.stderr:
            print("SKIP: this build has no CUDA backend")
            return 0
        want = [reference(checkpoint, *r) for r in REQUESTS]
        got = serve(checkpoint, 1, 1, REQUESTS)
        for i, (g, w) in enumerate(zip(got, want)):
            assert g == w, f"request {i}: served {g}, in-process {w}"
        print(f"tp=1 on GPU 0: {len(REQUESTS)} concurrent requests == mla-generate --device=0")
        layouts = [(2, 1, [0, 1], ()), (2, 1, [0, 1], (0,)), (2, 2, [0, 1, 2, 3], ())]
        if gpus in (2, 3):
            layouts.append((2, 2, [0, 1, 1, 0], ()))  # crossed: two workers per GPU
        for tp, pp, devices, eager in layouts:
            if gpus <= max(devices):
                print(f"tp={tp} x pp={pp}: skipped, {gpus} GPU(s) visible")
                continue
            got = serve(checkpoint, tp, pp, REQUESTS[:GREEDY], devices, eager)
            for i, (g, w) in enumerate(zip(got, want)):
                at = first_divergence(g, w)
                assert at is None, (f"tp={tp} x pp={pp} on GPUs {devices}, request {i}: first"
                                    f" divergence at token {at}: {g} vs one GPU {w}")
            how = f"ranks {list(eager)} op by op, the others" if eager else "every rank"
            print(f"tp={tp} x pp={pp}, ranks on GPUs {devices}, over NCCL, {how} replaying "
                  "step graphs: greedy tokens == one GPU")
    finally:
        shutil.rmtree(checkpoint, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
