#!/usr/bin/env python3
"""PyTorch baseline for absorbed MLA decode attention, and the comparison table.

Runs, in one invocation on one card: our CUDA benchmark (--ours, bench/mla_decode_bench, whose
"RESULT case ms lanes cuts bytes flops" lines it reads), then PyTorch on the same cases, and
prints for each case ours, PyTorch, the roofline floor, our TB/s and TFLOP/s and the ratios.

A case is B x L [h H] [q Q] as in mla_decode_bench.cu (L written rL: lengths drawn from
[1, L] by the same LCG). PyTorch computes what a user would write, with bf16 matmuls over a
contiguous (padded) latent cache kv [B, L, 576] (the value is kv[..., :512]) and queries
q [B, Q*H, 576]:
    s = (q @ kv^T) * scale, masked (causal rows, padded keys) to -inf in fp32
    o = softmax(s).bf16 @ kv[..., :512]
Timing as ours: random inputs, enough copies rotated per call to exceed L2 (50 MB), each
copy's call captured in a CUDA graph, CUDA events around 10 back-to-back replays, median over
the groups (the median of single eager calls is printed too). Floors: bytes = sum(L) * 576 * 2
at the card's copy bandwidth, FLOPs = 2 * H * (576 + 512) * (keys attended, summed over query
rows) at its bf16 matmul rate, both measured at the start of the run (bench_driver.py; on an
H100 GPU.md measured 3.0 TB/s and 738 TFLOP/s).
"""
import argparse
import math
import re
import statistics

import torch

from bench_driver import (L2_ROTATION_BYTES, capture_graphs, floor_ms, measure_ceilings,
                          replay_median_ms, run_results)

D_CACHE, D_LATENT = 576, 512
SCALE = 0.1352337789
DEFAULT_CASES = "64x4096,128x8192,1x32768,64xr8192,128x4096h64,128x4096h32,128x4096h16,64x4096q2"


def parse_case(name):
    m = re.fullmatch(r"(\d+)x(r?)(\d+)(?:h(\d+))?(?:q(\d+))?(?:s(\d+))?", name)
    if not m:
        raise ValueError(f"bad case {name}")
    return dict(name=name, b=int(m.group(1)), random=m.group(2) == "r", l=int(m.group(3)),
                h=int(m.group(4) or 128), q=int(m.group(5) or 1))


def context_lengths(c):
    """mla_decode_bench.cu's ContextLengths: L each, or 1 + LCG % L."""
    if not c["random"]:
        return [c["l"]] * c["b"]
    state, lens = 12345, []
    for _ in range(c["b"]):
        state = (state * 1103515245 + 12345) % 2147483648
        lens.append(max(c["q"], 1 + state % c["l"]))
    return lens


def floors(c, lens):
    cache_bytes = sum(lens) * D_CACHE * 2
    attended = sum(n - c["q"] + i + 1 for n in lens for i in range(c["q"]))
    flops = 2.0 * c["h"] * attended * (D_CACHE + D_LATENT)
    return cache_bytes, flops, floor_ms(cache_bytes, flops)


def torch_decode(q, kv, mask):
    s = torch.matmul(q, kv.transpose(1, 2)) * SCALE
    s = s.float()
    if mask is not None:
        s.masked_fill_(mask, float("-inf"))
    p = torch.softmax(s, dim=-1).to(torch.bfloat16)
    return torch.matmul(p, kv[..., :D_LATENT])


def make_mask(c, lens):
    """True where a query row must not see a key: padded keys, and causal rows (Q > 1)."""
    b, h, q, width = c["b"], c["h"], c["q"], max(lens)
    if not c["random"] and q == 1:
        return None
    key = torch.arange(width, device="cuda").view(1, 1, width)
    length = torch.tensor(lens, device="cuda").view(b, 1, 1)
    row = torch.arange(q, device="cuda").repeat_interleave(h).view(1, q * h, 1)
    position = length - q + row  # the row's own position: keys 0..position are visible
    return key > position  # [b, q*h, width]


def time_torch(c, lens, iters):
    b, h, q, width = c["b"], c["h"], c["q"], max(lens)
    cache_bytes = b * width * D_CACHE * 2
    copies = max(2, math.ceil(L2_ROTATION_BYTES / cache_bytes))
    gen = torch.Generator(device="cuda").manual_seed(0)
    kvs = [torch.rand(b, width, D_CACHE, device="cuda", generator=gen).mul_(2).sub_(1).to(torch.bfloat16)
           for _ in range(copies)]
    qs = [torch.rand(b, q * h, D_CACHE, device="cuda", generator=gen).mul_(2).sub_(1).to(torch.bfloat16)
          for _ in range(copies)]
    mask = make_mask(c, lens)
    for i in range(5):
        torch_decode(qs[i % copies], kvs[i % copies], mask)
    start = torch.cuda.Event(enable_timing=True)
    stop = torch.cuda.Event(enable_timing=True)
    eager = []
    for i in range(iters):
        start.record()
        torch_decode(qs[i % copies], kvs[i % copies], mask)
        stop.record()
        stop.synchronize()
        eager.append(start.elapsed_time(stop))
    graphs = capture_graphs(
        torch, [lambda k=k: torch_decode(qs[k], kvs[k], mask) for k in range(copies)])
    replayed = replay_median_ms(torch, graphs, iters, replays=10)
    del kvs, qs, mask, graphs
    torch.cuda.empty_cache()
    return replayed, statistics.median(eager)


def run_ours(binary, cases, iters):
    results = {}
    for name, ms, lanes, cuts, _, _ in run_results(
            [binary, "--cases=" + ",".join(c["name"] for c in cases), f"--iters={iters}"],
            timeout=300):
        results[name] = (float(ms), int(lanes), int(cuts))
    return results


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--ours", help="path to mla_decode_bench")
    parser.add_argument("--cases", default=DEFAULT_CASES)
    parser.add_argument("--iters", type=int, default=50)
    parser.add_argument("--no-torch", action="store_true", help="ours and the floors only")
    args = parser.parse_args()
    cases = [parse_case(n) for n in args.cases.split(",")]
    print(f"torch {torch.__version__}, {torch.cuda.get_device_name()}")
    measure_ceilings(torch)
    ours = run_ours(args.ours, cases, args.iters) if args.ours else {}

    rows = []
    for c in cases:
        lens = context_lengths(c)
        cache_bytes, flops, f_ms = floors(c, lens)
        t_ms, t_eager = (float("nan"), float("nan")) if args.no_torch else time_torch(c, lens, args.iters)
        o_ms, lanes, cuts = ours.get(c["name"], (float("nan"), 0, 0))
        rows.append((c["name"], f"{lanes}/{cuts}", o_ms, t_ms, t_eager, f_ms,
                     cache_bytes / (o_ms * 1e-3) / 1e12, flops / (o_ms * 1e-3) / 1e12, t_ms / o_ms,
                     f_ms / o_ms))
    print()
    print("| case | lanes/cut rows | ours ms | PyTorch ms | PyTorch eager ms | floor ms | ours TB/s |"
          " ours TFLOP/s | PyTorch/ours | floor/ours |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for name, plan, o, t, te, f, tb, tf, speedup, eff in rows:
        print(f"| {name} | {plan} | {o:.4f} | {t:.4f} | {te:.4f} | {f:.4f} | {tb:.2f} | {tf:.0f} |"
              f" {speedup:.2f}x | {100 * eff:.0f}% |")


if __name__ == "__main__":
    main()
