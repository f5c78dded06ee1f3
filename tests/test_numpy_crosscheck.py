"""Cross-checks the C++ model (mla-generate) against the independent numpy reference.

Runs `$MLA_BIN_DIR/tools/mla-generate` greedily on the tiny checkpoint in
$MLA_TINY_CHECKPOINT, once with the prompt prefilled in one step and once in chunks of 3,
with --dump_logits. Row i of the dump holds the logits generated token i was chosen from,
i.e. the logits at position len(prompt) - 1 + i of prompt + generated tokens. The numpy
model computes the same positions in one full-sequence pass.

Pass criteria, per row: relative L2 error ||cpp - ref|| / ||ref|| < 1e-3, and the greedy
token of the C++ run equals the numpy argmax. The measured errors are printed.
"""

import os
import subprocess
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "reference"))
import deepseek_numpy  # noqa: E402

PROMPT = [0, 17, 923, 5, 388, 41, 1000, 2, 511, 64, 3]
MAX_TOKENS = 8
REL_L2_BOUND = 1e-3


def run_generate(binary, checkpoint, prefill_chunk, dump_path):
    """Runs mla-generate; returns (generated tokens, logits [n, vocab])."""
    command = [binary, f"--checkpoint={checkpoint}", "--prompt=" + ",".join(map(str, PROMPT)),
               f"--max_tokens={MAX_TOKENS}", "--ignore_eos", f"--prefill_chunk={prefill_chunk}",
               f"--dump_logits={dump_path}"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    if result.returncode != 0:
        raise AssertionError(f"{' '.join(command)} failed ({result.returncode}):\n{result.stderr}")
    lines = [l for l in result.stdout.splitlines() if l.startswith("tokens:")]
    if len(lines) != 1:
        raise AssertionError(f"no 'tokens:' line in mla-generate's output:\n{result.stdout}")
    tokens = [int(t) for t in lines[0][len("tokens:"):].strip().split(",")]
    logits = np.fromfile(dump_path, dtype="<f4")
    return tokens, logits


def compare(label, tokens, cpp_logits, ckpt):
    """Checks one run against the reference; returns a list of failure messages."""
    vocab = ckpt.config["vocab_size"]
    failures = []
    if len(tokens) != MAX_TOKENS:
        failures.append(f"{label}: expected {MAX_TOKENS} tokens, got {len(tokens)}")
    if cpp_logits.size != len(tokens) * vocab:
        return failures + [f"{label}: logits dump has {cpp_logits.size} floats, "
                           f"expected {len(tokens)} x {vocab}"]
    cpp_logits = cpp_logits.reshape(len(tokens), vocab)
    sequence = PROMPT + tokens[:-1]
    ref_all = deepseek_numpy.forward(ckpt, sequence)
    ref = ref_all[len(PROMPT) - 1:]
    print(f"{label}: tokens {tokens}")
    print(f"{'row':>4} {'pos':>4} {'token':>6} {'ref argmax':>10} {'rel L2':>10} "
          f"{'max |diff|':>10} {'top-2 gap':>9}")
    worst = 0.0
    for i, token in enumerate(tokens):
        diff = cpp_logits[i] - ref[i]
        rel = float(np.linalg.norm(diff) / np.linalg.norm(ref[i]))
        max_abs = float(np.max(np.abs(diff)))
        top2 = np.sort(ref[i])[-2:]
        ref_token = int(np.argmax(ref[i]))
        worst = max(worst, rel)
        print(f"{i:>4} {len(PROMPT) - 1 + i:>4} {token:>6} {ref_token:>10} {rel:>10.2e} "
              f"{max_abs:>10.2e} {top2[1] - top2[0]:>9.4f}")
        if not np.all(np.isfinite(cpp_logits[i])):
            failures.append(f"{label}: row {i} has non-finite logits")
        elif not rel < REL_L2_BOUND:
            failures.append(f"{label}: row {i}: relative L2 error {rel:.3e} >= {REL_L2_BOUND}")
        if token != ref_token:
            failures.append(f"{label}: row {i}: C++ chose {token}, numpy argmax is {ref_token}")
    print(f"{label}: worst relative L2 error {worst:.3e} (bound {REL_L2_BOUND})")
    return failures


def main():
    checkpoint = os.environ.get("MLA_TINY_CHECKPOINT")
    bin_dir = os.environ.get("MLA_BIN_DIR")
    if not checkpoint or not bin_dir:
        print("MLA_TINY_CHECKPOINT and MLA_BIN_DIR must be set")
        return 1
    binary = os.path.join(bin_dir, "tools", "mla-generate")
    ckpt = deepseek_numpy.Checkpoint(checkpoint)

    rms = []
    deepseek_numpy.forward(ckpt, PROMPT, rms)
    print("numpy hidden-state RMS (embedding, then after each layer):",
          " ".join(f"{r:.4f}" for r in rms))
    failures = []
    if not all(np.isfinite(rms)) or min(rms) < 0.1 or max(rms) > 100:
        failures.append(f"reference activations degenerate: {rms}")

    with tempfile.TemporaryDirectory() as tmp:
        for label, chunk in (("one-step prefill", 0), ("prefill in chunks of 3", 3)):
            tokens, logits = run_generate(binary, checkpoint, chunk, os.path.join(tmp, "logits"))
            failures += compare(label, tokens, logits, ckpt)

    for failure in failures:
        print("FAIL:", failure)
    print("PASS" if not failures else f"{len(failures)} failure(s)")
    return 0 if not failures else 1


if __name__ == "__main__":
    sys.exit(main())
