#!/usr/bin/env python3
"""Independent reference for DeLong's test, straight from the 1988 paper.

DeLong, DeLong & Clarke-Pearson (1988), Biometrics 44(3), 837-845: with
psi(x, y) = 1 if x > y, 1/2 if x == y, 0 otherwise, positives X_1..X_m and
negatives Y_1..Y_n, each model k has structural components
    V10_k(X_i) = (1/n) sum_j psi(X_i, Y_j),  V01_k(Y_j) = (1/m) sum_i psi(X_i, Y_j),
AUC_k = mean of either, S10 / S01 their sample covariance matrices, and
S = S10/m + S01/n.  z = (AUC_A - AUC_B) / sqrt(S_AA + S_BB - 2 S_AB).

This is the direct O(m n) definition in pure Python (no numpy), deliberately
not the midrank algorithm that src/metrics/delong.rs implements, so that the
Rust test compares two independent computations.

Input on stdin: JSON {"labels": [0/1...], "a": [...], "b": [...]}.
Output on stdout: JSON with auc_a, auc_b, var_a, var_b, cov_ab, z, p_value.
"""
import json
import math
import sys


def psi(x, y):
    return 1.0 if x > y else (0.5 if x == y else 0.0)


def components(labels, scores):
    xs = [s for s, l in zip(scores, labels) if l > 0.5]
    ys = [s for s, l in zip(scores, labels) if l <= 0.5]
    v10 = [sum(psi(x, y) for y in ys) / len(ys) for x in xs]
    v01 = [sum(psi(x, y) for x in xs) / len(xs) for y in ys]
    return v10, v01


def cov(a, b):
    ma, mb = sum(a) / len(a), sum(b) / len(b)
    return sum((x - ma) * (y - mb) for x, y in zip(a, b)) / (len(a) - 1)


def main():
    d = json.load(sys.stdin)
    labels = d["labels"]
    a10, a01 = components(labels, d["a"])
    b10, b01 = components(labels, d["b"])
    m, n = len(a10), len(a01)
    auc_a, auc_b = sum(a10) / m, sum(b10) / m
    var_a = cov(a10, a10) / m + cov(a01, a01) / n
    var_b = cov(b10, b10) / m + cov(b01, b01) / n
    cov_ab = cov(a10, b10) / m + cov(a01, b01) / n
    z = (auc_a - auc_b) / math.sqrt(var_a + var_b - 2 * cov_ab)
    p = math.erfc(abs(z) / math.sqrt(2))
    json.dump({"auc_a": auc_a, "auc_b": auc_b, "var_a": var_a, "var_b": var_b,
               "cov_ab": cov_ab, "z": z, "p_value": p, "m": m, "n": n}, sys.stdout)


if __name__ == "__main__":
    main()
