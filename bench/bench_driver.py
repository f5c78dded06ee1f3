"""What the PyTorch drivers of the benchmarks (mla_decode_torch.py, ops_torch.py) share: the
roofline ceilings (measured on the card of the run, as GPU.md measured the H100's), the floor of
an op from its bytes and FLOPs, running our benchmark binary and reading its "RESULT ..." lines,
and timing CUDA-graph replays. torch is passed in, so that importing this module does not need
PyTorch.
"""
import statistics
import subprocess
import sys

# The ceilings floor_ms divides by: GPU.md's H100 numbers until measure_ceilings replaces them.
PEAK_BYTES = 3.0e12   # B/s
PEAK_FLOPS = 738e12   # dense bf16 FLOP/s
L2_ROTATION_BYTES = 200e6  # inputs rotated over at least this much, so L2 (50 MB) holds none


def floor_ms(nbytes, flops):
    return 1e3 * max(nbytes / PEAK_BYTES, flops / PEAK_FLOPS)


def measure_ceilings(torch):
    """Measures this card's ceilings as GPU.md did for the H100 (a 1 GiB device-to-device copy,
    bytes read + written; an 8192^3 bf16 matmul of random data; medians of 10 after warm-up),
    makes floor_ms use them, prints and returns (B/s, FLOP/s)."""
    global PEAK_BYTES, PEAK_FLOPS
    start = torch.cuda.Event(enable_timing=True)
    stop = torch.cuda.Event(enable_timing=True)

    def median_ms(fn):
        for _ in range(3):
            fn()
        times = []
        for _ in range(10):
            start.record()
            fn()
            stop.record()
            stop.synchronize()
            times.append(start.elapsed_time(stop))
        return statistics.median(times)

    src = torch.empty(1 << 30, dtype=torch.uint8, device="cuda")
    dst = torch.empty_like(src)
    PEAK_BYTES = 2 * src.numel() / (median_ms(lambda: dst.copy_(src)) * 1e-3)
    del src, dst
    n = 8192
    a = torch.randn(n, n, dtype=torch.bfloat16, device="cuda")
    b = torch.randn(n, n, dtype=torch.bfloat16, device="cuda")
    PEAK_FLOPS = 2 * n ** 3 / (median_ms(lambda: a @ b) * 1e-3)
    print(f"ceilings measured on this card: {PEAK_BYTES / 1e12:.2f} TB/s (1 GiB copy), "
          f"{PEAK_FLOPS / 1e12:.0f} TFLOP/s (bf16 8192^3 matmul)")
    return PEAK_BYTES, PEAK_FLOPS


def run_results(command, timeout):
    """Runs our benchmark, echoes its output; the fields after "RESULT" of each result line."""
    proc = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    sys.stdout.write(proc.stdout)
    sys.stderr.write(proc.stderr)
    if proc.returncode != 0:
        print(f"ours exited with {proc.returncode}")
    return [line.split()[1:] for line in proc.stdout.splitlines() if line.startswith("RESULT ")]


def capture_graphs(torch, fns):
    """[(graph, output)] of each call, warmed up off the capture stream as torch.cuda.graph wants."""
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for fn in fns:
            fn()
    torch.cuda.current_stream().wait_stream(side)
    graphs = []
    for fn in fns:
        g = torch.cuda.CUDAGraph()
        with torch.cuda.graph(g):
            out = fn()
        graphs.append((g, out))
    return graphs


def replay_median_ms(torch, graphs, iters, replays):
    """Median over `iters` groups of `replays` back-to-back replays (rotating over the graphs)
    of CUDA-event time per replay."""
    start = torch.cuda.Event(enable_timing=True)
    stop = torch.cuda.Event(enable_timing=True)
    times = []
    for i in range(iters):
        start.record()
        for r in range(replays):
            graphs[(i * replays + r) % len(graphs)][0].replay()
        stop.record()
        stop.synchronize()
        times.append(start.elapsed_time(stop) / replays)
    return statistics.median(times)
