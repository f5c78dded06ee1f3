#!/usr/bin/env python3
"""Where a kernel's loops spend their time, from ncu's per-instruction warp-state samples.

Input: the source page of an ncu report as CSV, SASS only:
  ncu --kernel-name regex:MlaDecodeSplitKv --launch-skip 3 --launch-count 1 \
      --section WarpStateStats --section SourceCounters -o prof <bench> --cases=64x4096 --iters=1
  ncu -i prof.ncu-rep --page source --csv --print-source sass > src.csv
  python3 bench/ncu_phases.py src.csv
Output: each loop (a run of instructions executed the same number of times, the count that holds
the most samples: one pass per tile in the decode kernel), cut into phases at its synchronisation points (wgmma waits,
named barriers, mbarrier waits) and at instructions holding at least --heavy of the loop's
samples; each line gives the phase's samples and share of its loop. A stalled warp's sample
lands on the instruction it waits to issue, so a barrier's wait shows on the instruction after
it: such lines are marked "after a barrier". bench/RESULTS.md ("Decode: where a tile's time
goes") reads these tables.
"""

import argparse
import csv
import sys

SAMPLES = "Warp Stall Sampling (All Samples)"
EXECUTED = "Instructions Executed"
SYNC_POINTS = ("WARPGROUP.DEPBAR", "BAR.SYNC", "BAR.ARV", "SYNCS.PHASECHK")
BARRIERS = ("BAR.SYNC",)


def read_rows(path):
    """(source text, samples, executed) per SASS instruction, in address order."""
    with open(path, newline="") as f:
        lines = f.read().splitlines()
    # The first line names the kernel; the header follows.
    start = next(i for i, line in enumerate(lines) if line.startswith('"Address"'))
    rows = []
    for r in csv.DictReader(lines[start:]):
        executed = r[EXECUTED].strip()
        rows.append((r["Source"].strip(), int(r[SAMPLES] or 0),
                     int(executed) if executed.isdigit() else 0))
    return rows


def loops(rows, max_gap):
    """[first, last] index ranges of the loops: runs of the instructions whose execution count
    holds the most samples (one pass per tile), with at most max_gap other instructions
    (conditional code) between two of them."""
    counts = {}
    for _, samples, executed in rows:
        if executed:
            counts[executed] = counts.get(executed, 0) + samples
    if not counts:
        return []
    per_pass = max(counts, key=lambda c: (counts[c], c))
    found, first, last = [], None, None
    for i, (_, _, executed) in enumerate(rows):
        if executed != per_pass:
            continue
        if first is not None and i - last > max_gap:
            found.append((first, last))
            first = None
        if first is None:
            first = i
        last = i
    if first is not None:
        found.append((first, last))
    return found


def phases(rows, first, last, heavy):
    """(index, text, phase samples, after a barrier) for each cut point of one loop."""
    total = sum(rows[i][1] for i in range(first, last + 1)) or 1
    cuts, acc = [], 0
    for i in range(first, last + 1):
        text, samples, _ = rows[i]
        acc += samples
        after_barrier = i > 0 and rows[i - 1][0].startswith(BARRIERS)
        if text.startswith(SYNC_POINTS) or samples >= heavy * total or i == last:
            cuts.append((i, text, acc, after_barrier))
            acc = 0
    return cuts, total


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("csv", help="ncu --page source --csv --print-source sass output")
    parser.add_argument("--heavy", type=float, default=0.03,
                        help="also cut at an instruction holding this share of its loop")
    parser.add_argument("--max-gap", type=int, default=200,
                        help="instructions of another count allowed inside a loop (branches)")
    args = parser.parse_args(argv)
    rows = read_rows(args.csv)
    kernel_total = sum(r[1] for r in rows) or 1
    for first, last in loops(rows, args.max_gap):
        cuts, total = phases(rows, first, last, args.heavy)
        print(f"loop: instructions {first}-{last}, {total} samples "
              f"({100 * total / kernel_total:.0f}% of the kernel's)")
        for i, text, samples, after_barrier in cuts:
            note = "  (after a barrier: its wait)" if after_barrier else ""
            print(f"  {samples:7d} {100 * samples / total:5.1f}%  up to {i:5d} {text[:60]}{note}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
