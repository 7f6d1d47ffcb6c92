"""The torchjd oracle: runs torchjd's aggregators on fixed Jacobians and
writes what they return, as the independent truth the Gramian-engine
strategies are tested against (src/strategies/gramian/oracle_tests.rs).

Pinned: torchjd==0.18.0 (with its `full` extra), torch==2.11.0, numpy; install
them with scripts/setup-oracle-python.sh. Usage:

    "$(scripts/setup-oracle-python.sh)" scripts/torchjd_oracle.py OUT.json

The Jacobians (T = 2, 3, 5 rows; aligned, conflicting and nearly
rank-deficient) come from a fixed numpy generator and are written into the
output with everything computed from them, in float64. Per method: the
aggregated gradient J^T w, and the weights w where they are unique.

PCGrad: torchjd's PCGradWeighting draws a fresh torch.randperm order for each
task; the oracle replaces torch.randperm with the identity order while it
runs, so its result is PCGrad with the fixed order 0, 1, ..., T-1, which is
deterministic and comparable.
"""

import json
import sys

import numpy as np
import torch
import torchjd
from torchjd import aggregation as A

DIM = 7


def _jacobians():
    rng = np.random.default_rng(20240618)
    cases = {}
    for t in (2, 3, 5):
        base = rng.normal(size=DIM)
        aligned = base + 0.4 * rng.normal(size=(t, DIM))
        aligned *= rng.uniform(0.5, 2.0, size=(t, 1))
        conflicting = rng.normal(size=(t, DIM))
        conflicting[1] = -0.8 * conflicting[0] + 0.5 * rng.normal(size=DIM)
        near = rng.normal(size=(t, DIM))
        if t == 2:
            near[1] = 1.5 * near[0] + 1e-3 * rng.normal(size=DIM)
        else:
            near[t - 1] = near[0] - near[1] + 1e-3 * rng.normal(size=DIM)
            if t >= 5:
                near[t - 2] = 0.5 * near[1] + near[2] + 1e-3 * rng.normal(size=DIM)
        cases[f"t{t}-aligned"] = aligned
        cases[f"t{t}-conflicting"] = conflicting
        cases[f"t{t}-near-rank-deficient"] = near
    return cases


def _vec(x):
    return [float(v) for v in x.detach().reshape(-1).tolist()]


class _IdentityPermutation:
    """torch.randperm replaced by arange while PCGrad runs."""

    def __enter__(self):
        self._saved = torch.randperm
        torch.randperm = lambda n, *a, **k: torch.arange(n)

    def __exit__(self, *exc):
        torch.randperm = self._saved


def _gramian_method(agg, j, g, weights=True):
    out = {"aggregated": _vec(agg(j))}
    if weights:
        out["weights"] = _vec(agg.gramian_weighting(g))
    return out


def _cagrad_tight(j, g, c):
    """torchjd's CAGrad problem solved with Clarabel at tight tolerances.

    torchjd stops Clarabel at its default tolerances; the objective is flat
    around its minimiser, so its weights can be off by ~1e-5. This is the same
    formula (trace-normalised G, the same post-processing) solved to ~1e-12.
    """
    import cvxpy as cp

    gn = (g / torch.trace(g)).numpy()
    m = gn.shape[0]
    mean = np.ones(m) / m
    evals, evecs = np.linalg.eigh(gn)
    root = evecs @ np.diag(np.sqrt(np.clip(evals, 0.0, None))) @ evecs.T
    b = gn @ mean
    sqrt_phi = c * np.sqrt(mean @ gn @ mean)
    w = cp.Variable(m)
    problem = cp.Problem(cp.Minimize(b @ w + sqrt_phi * cp.norm(root @ w, 2)), [w >= 0, cp.sum(w) == 1])
    problem.solve(cp.CLARABEL, tol_gap_abs=1e-14, tol_gap_rel=1e-14, tol_feas=1e-14, max_iter=500)
    w_opt = np.clip(w.value, 0.0, None)
    w_opt = w_opt / w_opt.sum()
    g_w_norm = np.sqrt(max(w_opt @ gn @ w_opt, 0.0))
    weights = mean + sqrt_phi / g_w_norm * w_opt if g_w_norm >= 1e-4 else np.zeros(m)
    weights = torch.tensor(weights, dtype=torch.float64)
    return {"aggregated": _vec(j.T @ weights), "weights": _vec(weights)}


def _run(j):
    t = j.shape[0]
    g = j @ j.T
    res = {}
    res["upgrad"] = _gramian_method(A.UPGrad(), j, g)
    res["dualproj"] = _gramian_method(A.DualProj(), j, g)
    res["mgda-frank-wolfe"] = _gramian_method(A.MGDA(), j, g)
    res["mgda-converged"] = _gramian_method(A.MGDA(epsilon=1e-12, max_iters=20000), j, g, weights=False)
    res["imtl-g"] = _gramian_method(A.IMTLG(), j, g)
    for mode in ("min", "median", "rmse"):
        res[f"aligned-mtl-{mode}"] = _gramian_method(A.AlignedMTL(scale_mode=mode), j, g)
    res["cagrad"] = _gramian_method(A.CAGrad(c=0.5), j, g)
    res["cagrad-tight"] = _cagrad_tight(j, g, 0.5)
    for name, max_norm in (("nash-mtl", 1.0), ("nash-mtl-unclipped", 0.0)):
        agg = A.NashMTL(n_tasks=t, max_norm=max_norm)
        res[name] = {"aggregated": _vec(agg(j))}
        agg.reset()
        res[name]["weights"] = _vec(agg.weighting(j))
    with _IdentityPermutation():
        res["pcgrad-fixed-order"] = _gramian_method(A.PCGrad(), j, g)
    res["config"] = {"aggregated": _vec(A.ConFIG()(j))}
    for alpha in (0.5, 1.0, 2.0):
        res[f"fairgrad-{alpha}"] = _gramian_method(A.FairGrad(alpha=alpha), j, g)
    return g, res


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: torchjd_oracle.py OUT.json")
    cases = []
    for name, jac in _jacobians().items():
        j = torch.tensor(jac, dtype=torch.float64)
        g, res = _run(j)
        cases.append({
            "name": name,
            "jacobian": [_vec(row) for row in j],
            "gramian": [_vec(row) for row in g],
            "results": res,
        })
    doc = {
        "generator": "scripts/torchjd_oracle.py",
        "torchjd": torchjd.__version__ if hasattr(torchjd, "__version__") else "0.18.0",
        "torch": torch.__version__,
        "cases": cases,
    }
    with open(sys.argv[1], "w") as f:
        json.dump(doc, f, indent=1, sort_keys=True)
        f.write("\n")


if __name__ == "__main__":
    main()
