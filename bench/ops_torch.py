#!/usr/bin/env python3
"""Per-op timings at DeepSeek-V3 shapes: ours, PyTorch and the roofline floor in one table.

Runs, in one invocation on one card: our CUDA benchmark (--ours, bench/mla_ops_bench, whose
"RESULT case shape ms eager_ms bytes flops" lines it reads), then the PyTorch equivalent of each
case (bench/ops_torch_cases.py, which also says which equivalent each op uses), and prints one
markdown table: op, T, shape, ours, PyTorch, floor and the ratios, then the equivalents used.

Cases are "<op>@<T>" (mla_ops_bench --list); T = 64 is a decode batch, 4096 a prefill chunk.
Timing as ours (ops_bench.cc): random inputs; ceil(200 MB / bytes) copies of the op's tensors
(2 to 128) rotated per call so that L2 (50 MB) does not hold them; warm-up; the median of single
eager calls; then each copy's call captured in a CUDA graph and CUDA events around 10
back-to-back replays (1 when a call takes over 1 ms), median over the groups (at most ~3 s per
case). An op PyTorch cannot capture is timed eagerly and marked "(eager)". Floor = max(bytes /
bandwidth, flops / bf16 matmul rate), the card's ceilings measured at the start of the run as in
mla_decode_torch.py (bench_driver.py); the bytes (tensors read + written once) and FLOPs (tensor-core work) are stated per op in
ops_torch_cases.py and ops_bench_*.cc, and a mismatch between the two is reported.

Usage: python3 bench/ops_torch.py --ours build/bench/mla_ops_bench [--cases=a@64,b@4096]
       [--iters=50] [--no-torch]
Without --ours only PyTorch and the floors are printed.
"""
import argparse
import math
import statistics

import bench_driver
from bench_driver import (L2_ROTATION_BYTES, capture_graphs, floor_ms, measure_ceilings,
                          replay_median_ms, run_results)

MAX_COPIES = 128
BUDGET_MS = 3000.0


def copies_for(nbytes):
    """ops_bench.cc's CopiesFor."""
    return int(min(max(math.ceil(L2_ROTATION_BYTES / max(nbytes, 1.0)), 2), MAX_COPIES))


def default_cases(ops):
    return [f"{op}@{t}" for op, (tokens, _) in ops.items() for t in tokens]


def time_torch(torch, fns, max_iters):
    """(graph replay median ms or None, eager median ms, iterations) of the per-copy calls."""
    copies = len(fns)
    for fn in fns:  # warm-up, every copy
        fn()
    torch.cuda.synchronize()
    start = torch.cuda.Event(enable_timing=True)
    stop = torch.cuda.Event(enable_timing=True)

    def timed(fn):
        start.record()
        fn()
        stop.record()
        stop.synchronize()
        return start.elapsed_time(stop)

    estimate = min(timed(fns[i % copies]) for i in range(3))
    replays = 1 if estimate >= 1.0 else 10
    iters = int(min(max(BUDGET_MS // (max(estimate, 1e-3) * (replays + 1)), 5), max_iters))
    eager = [timed(fns[i % copies]) for i in range(iters)]
    try:
        graphs = capture_graphs(torch, fns)
    except Exception as e:  # an op that syncs or allocates on the host cannot be captured
        print(f"  graph capture failed ({type(e).__name__}: {str(e).splitlines()[0][:120]})")
        torch.cuda.synchronize()
        return None, statistics.median(eager), iters
    replayed = replay_median_ms(torch, graphs, iters, replays)
    del graphs
    return replayed, statistics.median(eager), iters


def run_ours(binary, cases, iters):
    """{case: (shape, ms, eager_ms, bytes, flops)} from mla_ops_bench's RESULT lines."""
    results = {}
    for name, shape, ms, eager, nbytes, flops in run_results(
            [binary, "--cases=" + ",".join(cases), f"--iters={iters}"], timeout=420):
        results[name] = (shape, float(ms), float(eager), float(nbytes), float(flops))
    return results


def fmt(x, digits=4):
    return "n/a" if x is None or math.isnan(x) else f"{x:.{digits}f}"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ours", help="path to mla_ops_bench")
    parser.add_argument("--cases", help="comma-separated op@T (default: every case)")
    parser.add_argument("--iters", type=int, default=50)
    parser.add_argument("--no-torch", action="store_true", help="ours and the floors only")
    args = parser.parse_args()

    import torch  # here, so that --help works where PyTorch is not installed
    import ops_torch_cases as cases_mod

    torch.manual_seed(0)
    try:  # Linear's fp32 output without a separate cast, where this PyTorch has it
        a = torch.ones(16, 16, device="cuda", dtype=torch.bfloat16)
        cases_mod.MM_OUT_DTYPE["supported"] = torch.mm(a, a, out_dtype=torch.float32).dtype == \
            torch.float32
    except (TypeError, RuntimeError):
        cases_mod.MM_OUT_DTYPE["supported"] = False
    print(f"torch {torch.__version__}, {torch.cuda.get_device_name()}")
    measure_ceilings(torch)
    names = args.cases.split(",") if args.cases else default_cases(cases_mod.OPS)
    ours = run_ours(args.ours, names, args.iters) if args.ours else {}

    rows, notes = [], {}
    for name in names:
        op, t = name.split("@")
        spec = cases_mod.OPS[op][1](int(t))
        notes[op] = spec["note"]
        t_ms = t_eager = None
        tag = ""
        if not args.no_torch:
            try:
                fns = spec["setup"](copies_for(spec["bytes"]))
                t_ms, t_eager, iters = time_torch(torch, fns, args.iters)
                if t_ms is None:
                    t_ms, tag = t_eager, " (eager)"
                print(f"torch {name}: {fmt(t_ms)} ms{tag}, eager {fmt(t_eager)} ms, {iters} iters")
            except Exception as e:  # e.g. out of memory: report, go on with the next case
                print(f"torch {name} failed: {type(e).__name__}: {str(e).splitlines()[0][:160]}")
                tag = " (failed)"
            fns = None
            torch.cuda.synchronize()
            torch.cuda.empty_cache()
        shape, o_ms, o_eager, o_bytes, o_flops = ours.get(name, (spec["shape"], math.nan, math.nan,
                                                                 spec["bytes"], spec["flops"]))
        if (o_bytes, o_flops) != (spec["bytes"], spec["flops"]) or shape != spec["shape"]:
            print(f"MISMATCH {name}: ours {shape} {o_bytes:.0f} B {o_flops:.0f} FLOP, "
                  f"ops_torch_cases {spec['shape']} {spec['bytes']:.0f} B {spec['flops']:.0f} FLOP")
        f_ms = floor_ms(spec["bytes"], spec["flops"])
        rows.append((op, t, spec["shape"], o_ms, t_ms, tag, f_ms, o_eager, t_eager,
                     spec["bytes"], spec["flops"]))

    print()
    print("| op | T | shape | ours ms | PyTorch ms | floor ms | floor/ours | PyTorch/ours |"
          " eager ours / PyTorch ms | MB | GFLOP |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for op, t, shape, o, tm, tag, f, oe, te, nb, fl in rows:
        eff = f"{100 * f / o:.0f}%" if o == o and o > 0 else "n/a"
        speed = f"{tm / o:.2f}x" if tm is not None and o == o and o > 0 else "n/a"
        print(f"| {op} | {t} | {shape} | {fmt(o)} | {fmt(tm)}{tag} | {fmt(f, 5)} | {eff} | {speed} |"
              f" {fmt(oe)} / {fmt(te)} | {nb / 1e6:.2f} | {fl / 1e9:.1f} |")
    print()
    print("PyTorch equivalents (same dtypes as ours: fp32 activations, bf16 weights/caches):")
    for op, note in notes.items():
        print(f"- {op}: {note}")
    print("Columns: ours and PyTorch are CUDA-graph replay medians (eager: single eager calls);"
          f" floor = max(MB / {bench_driver.PEAK_BYTES / 1e12:.2f} TB/s,"
          f" GFLOP / {bench_driver.PEAK_FLOPS / 1e12:.0f} TFLOP/s) (measured above);"
          " floor/ours = our share of the"
          " roofline; PyTorch/ours > 1 means ours is faster.")


if __name__ == "__main__":
    main()
