"""Each matrix product of the small tabular MMOE's training step in its eight layouts.

The step's products (batch 1024; 32 fields of width 4 and 7 dense columns,
so 135 inputs; 8 experts of [16] side by side; 2 gates of 8; towers
16 -> 8 -> 1) are the forward [b, in] x [in, out], the input gradient
[b, out] x [out, in] and the weight gradient [in, b] x [b, out] of each
weight. Each is timed through torch.mm into a preallocated output, one
thread, in eight layouts: either operand stored transposed (t) or not (n),
and the product itself or its transpose (T). It prints the median
microseconds of each layout, then the sum over the products of the plain
layout (-nn, gradients through transposed views as autograd takes them)
and of the fastest one: bench-perf's `matrix products alone` times the
latter (src/bin/bench_perf/perf/machine.rs). docs/performance.md ("How far
the same arithmetic can go") quotes its numbers.

    python scripts/gemm_layouts.py
"""
import itertools
import time

import torch

B = 1024
# (name, in, out) of each dense weight, as bench-perf's step_products lists them.
WEIGHTS = [("experts", 135, 128), ("gate a", 135, 8), ("gate b", 135, 8),
           ("tower a l0", 16, 8), ("tower b l0", 16, 8), ("tower a logit", 8, 1), ("tower b logit", 8, 1)]


def median_us(m, k, n, ta, tb, reps=200):
    a = torch.randn(k, m).t() if ta else torch.randn(m, k)
    b = torch.randn(n, k).t() if tb else torch.randn(k, n)
    c = torch.empty(m, n)
    for _ in range(5):
        torch.mm(a, b, out=c)
    ts = []
    for _ in range(reps):
        s = time.perf_counter()
        torch.mm(a, b, out=c)
        ts.append(time.perf_counter() - s)
    ts.sort()
    return ts[len(ts) // 2] * 1e6


def main():
    torch.set_num_threads(1)
    plain = fastest = 0.0
    for name, i, o in WEIGHTS:
        # forward, input gradient, weight gradient
        for what, (m, k, n) in [("fwd", (B, i, o)), ("dx", (B, o, i)), ("dw", (i, B, o))]:
            row = {}
            for turned in (False, True):
                mm, nn = (n, m) if turned else (m, n)
                for ta, tb in itertools.product((False, True), repeat=2):
                    key = ("T" if turned else "-") + ("t" if ta else "n") + ("t" if tb else "n")
                    row[key] = median_us(mm, k, nn, ta, tb)
            # autograd's gradients read the forward's operands through transposed views
            plain += row["-nn"] if what == "fwd" else row["-nt"] if what == "dx" else row["-tn"]
            fastest += min(row.values())
            cells = " ".join(f"{k}:{v:6.1f}" for k, v in row.items())
            print(f"{name:<14} {what:<3} {(m, k, n)!s:<16} {cells}")
    print(f"sum of the plain layouts {plain / 1e3:.2f} ms, of the fastest {fastest / 1e3:.2f} ms")


if __name__ == "__main__":
    main()
