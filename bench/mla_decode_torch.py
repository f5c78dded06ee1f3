#!/usr/bin/env python3
"""PyTorch baseline for absorbed MLA decode attention, and the comparison table.

Runs, in one invocation on one card: our CUDA benchmark (--ours, bench/mla_decode_bench, whose
"RESULT B L H ms splits" lines it reads), then PyTorch on the same shapes, and prints for each
case ours, PyTorch, the roofline floor, our TB/s and the ratios.

PyTorch computes what a user would write, with bf16 matmuls over a contiguous latent cache
kv [B, L, 576] (the value is kv[..., :512]) and queries q [B, H, 576]:
    s = (q @ kv^T) * scale            bf16 matmul, fp32 softmax
    o = softmax(s).bf16 @ kv[..., :512]
Timing as ours: random inputs, enough copies rotated per call to exceed L2 (50 MB), warm-up,
CUDA events around each call, median. Floors: bytes = B*L*576*2 at 3.0 TB/s, FLOPs =
2*B*H*L*(576+512) at 738 TFLOP/s (GPU.md's measured H100 ceilings).
"""
import argparse
import math
import statistics
import subprocess
import sys

import torch

PEAK_BYTES = 3.0e12
PEAK_FLOPS = 738e12
L2_ROTATION_BYTES = 200e6
D_CACHE, D_LATENT = 576, 512
SCALE = 0.1352337789


def floor_ms(b, l, h):
    return 1e3 * max(b * l * D_CACHE * 2 / PEAK_BYTES, 2.0 * b * h * l * (D_CACHE + D_LATENT) / PEAK_FLOPS)


def torch_decode(q, kv):
    s = torch.matmul(q, kv.transpose(1, 2)) * SCALE
    p = torch.softmax(s.float(), dim=-1).to(torch.bfloat16)
    return torch.matmul(p, kv[..., :D_LATENT])


def time_torch(b, l, h, iters):
    cache_bytes = b * l * D_CACHE * 2
    copies = max(2, math.ceil(L2_ROTATION_BYTES / cache_bytes))
    gen = torch.Generator(device="cuda").manual_seed(0)
    kvs = [torch.rand(b, l, D_CACHE, device="cuda", generator=gen).mul_(2).sub_(1).to(torch.bfloat16)
           for _ in range(copies)]
    qs = [torch.rand(b, h, D_CACHE, device="cuda", generator=gen).mul_(2).sub_(1).to(torch.bfloat16)
          for _ in range(copies)]
    for i in range(5):
        torch_decode(qs[i % copies], kvs[i % copies])
    start = torch.cuda.Event(enable_timing=True)
    stop = torch.cuda.Event(enable_timing=True)
    times = []
    for i in range(iters):
        q, kv = qs[i % copies], kvs[i % copies]
        start.record()
        torch_decode(q, kv)
        stop.record()
        stop.synchronize()
        times.append(start.elapsed_time(stop))
    del kvs, qs
    torch.cuda.empty_cache()
    return statistics.median(times)


def run_ours(binary, cases, heads, iters):
    arg = ",".join(f"{b}x{l}" for b, l in cases)
    proc = subprocess.run([binary, f"--cases={arg}", f"--heads={heads}", f"--iters={iters}"],
                          capture_output=True, text=True, timeout=300)
    sys.stdout.write(proc.stdout)
    sys.stderr.write(proc.stderr)
    results = {}
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            _, b, l, h, ms, splits = line.split()
            results[(int(b), int(l))] = (float(ms), int(splits))
    if proc.returncode != 0:
        print(f"ours exited with {proc.returncode}")
    return results


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--ours", help="path to mla_decode_bench")
    parser.add_argument("--cases", default="64x4096,128x8192,1x32768")
    parser.add_argument("--heads", type=int, default=128)
    parser.add_argument("--iters", type=int, default=50)
    args = parser.parse_args()
    cases = [tuple(int(v) for v in c.split("x")) for c in args.cases.split(",")]
    print(f"torch {torch.__version__}, {torch.cuda.get_device_name()}")
    ours = run_ours(args.ours, cases, args.heads, args.iters) if args.ours else {}

    rows = []
    for b, l in cases:
        t_ms = time_torch(b, l, args.heads, args.iters)
        o_ms, splits = ours.get((b, l), (float("nan"), 0))
        f_ms = floor_ms(b, l, args.heads)
        gbytes = b * l * D_CACHE * 2
        rows.append((b, l, splits, o_ms, t_ms, f_ms, gbytes / (o_ms * 1e-3) / 1e12,
                     gbytes / (t_ms * 1e-3) / 1e12, t_ms / o_ms, f_ms / o_ms))
    print()
    print("| case (H=%d) | splits | ours ms | PyTorch ms | floor ms | ours TB/s | PyTorch TB/s |"
          " PyTorch/ours | floor/ours |" % args.heads)
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for b, l, splits, o, t, f, o_tb, t_tb, speedup, eff in rows:
        print(f"| B={b} L={l} | {splits} | {o:.4f} | {t:.4f} | {f:.4f} | {o_tb:.2f} | {t_tb:.2f} |"
              f" {speedup:.2f}x | {100 * eff:.0f}% |")


if __name__ == "__main__":
    main()
