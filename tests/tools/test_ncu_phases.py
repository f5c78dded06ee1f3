#!/usr/bin/env python3
"""bench/ncu_phases.py on a small source page written here: the loops are the runs of the most
executed count (conditional code inside them included, code between them not), and each phase
holds the samples since the previous cut point."""

import os
import sys
import tempfile

sys.path.insert(0, os.path.join(os.environ.get("MLA_SOURCE_DIR",
                                               os.path.join(os.path.dirname(__file__), "..", "..")),
                                "bench"))
import ncu_phases  # noqa: E402

HEADER = ('"Address","Source","Warp Stall Sampling (All Samples)",'
          '"Warp Stall Sampling (Not-issued Samples)","Instructions Executed"')

# (source, samples, executed): a prologue, a loop of 100 passes with a branch taken 10 times
# inside, code run once between, and a second loop of 100 passes.
INSTRUCTIONS = [
    ("LDC R1, c[0x0][0x28]", 5, 1),
    ("BAR.SYNC.DEFER_BLOCKING 0x2, 0x100", 1, 100),
    ("LDS R2, [R3]", 40, 100),            # the barrier's wait shows here
    ("HGMMA.64x64x16.F32.BF16 R4, gdesc[UR4], R4", 2, 100),
    ("FMUL R5, R5, R6", 3, 10),           # inside the loop, on a branch
    ("WARPGROUP.DEPBAR.LE gsb0, 0x0", 30, 100),
    ("@P0 BRA 0x10", 4, 100),
] + [("IADD3 R7, R7, 1, RZ", 0, 1)] * 300 + [
    ("SYNCS.PHASECHK.TRANS64.TRYWAIT P0, [R8], R9", 6, 100),
    ("FADD R10, R10, R11", 14, 100),
]


def write_page(path):
    with open(path, "w") as f:
        f.write('"Kernel Name","SomeKernel(int)",\n' + HEADER + "\n")
        for i, (source, samples, executed) in enumerate(INSTRUCTIONS):
            f.write(f'"0x{i * 16:x}","      {source}","{samples}","{samples}","{executed}"\n')


def main():
    with tempfile.TemporaryDirectory() as d:
        page = os.path.join(d, "src.csv")
        write_page(page)
        rows = ncu_phases.read_rows(page)
        assert len(rows) == len(INSTRUCTIONS), len(rows)
        found = ncu_phases.loops(rows, max_gap=200)
        assert found == [(1, 6), (307, 308)], found
        cuts, total = ncu_phases.phases(rows, 1, 6, heavy=0.5)
        assert total == 80, total
        # BAR.SYNC (1), LDS holds half the loop (40 + the barrier's 1 before it are cut at the
        # barrier), then the wgmma wait with the branch's samples, then the loop's end.
        assert [(i, s, after) for i, _, s, after in cuts] == [
            (1, 1, False), (2, 40, True), (5, 35, False), (6, 4, False)], cuts
        cuts, total = ncu_phases.phases(rows, 307, 308, heavy=0.5)
        assert [(i, s) for i, _, s, _ in cuts] == [(307, 6), (308, 14)], cuts
        assert ncu_phases.main([page]) == 0
    print("ncu_phases: loops and phases as written")
    return 0


if __name__ == "__main__":
    sys.exit(main())
