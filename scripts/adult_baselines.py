#!/usr/bin/env python3
"""Independent baselines on UCI Adult with exactly mtlbench's rows and features.

Reads a grid file (default experiments/adult.toml) for the table's path,
columns, transforms, missing-value markers and random split, and rebuilds
what `[data] kind = "table"` builds:

- the split: mtlbench's `unit_hash(seed, row)` (splitmix64 of the row's
  position, as a uniform number in [0, 1)) puts a row in test when it is
  below `test`, in validation when below `test + valid`, in train otherwise;
  the row counts and checksums printed here are asserted by the Rust test
  `data::table::tests::adult_split_matches_the_python_reference`, so both
  sides select the identical rows;
- categorical columns: the values seen in train; a missing value or one
  never seen in train is one shared out-of-vocabulary category;
- numeric columns: log1p / standardize (train mean, population std) / as is.

Then fits, on train only, per task (income >50K, never married):
- logistic regression on one-hot categories and the numeric columns
  (standardized), C chosen on validation;
- scikit-learn's HistGradientBoostingClassifier with native categorical
  splits: the defaults, and a small grid chosen on validation.
Each reported with validation and test ROC-AUC (mean over random states
where the model has one). Needs `pip install scikit-learn pandas`; the
Rust test suite does not depend on it.

Usage: scripts/adult_baselines.py [GRID.toml] [--json OUT]
"""
import argparse
import json
import math
import platform
import sys
import time
import tomllib
from datetime import datetime, timezone

import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

MASK = (1 << 64) - 1
OOV = "__oov__"
# Published by the Rust test on the same rows: (train, valid, test) counts and
# the sum of the test rows' positions for experiments/adult.toml.
EXPECTED_ADULT = {"rows": (34104, 4945, 9793), "test_position_sum": 239382478}


def unit_hash(seed: int, row: int) -> float:
    """mtlbench's data::table::unit_hash: splitmix64 of (seed, row) in [0, 1)."""
    z = (seed + row * 0x9E3779B97F4A7C15 + 0x9E3779B97F4A7C15) & MASK
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
    z ^= z >> 31
    return (z >> 11) / float(1 << 53)


def split_of(n: int, split: dict) -> np.ndarray:
    if split.get("by", "random") != "random":
        sys.exit("only `split = { by = \"random\", ... }` is reproduced")
    seed, valid, test = split.get("seed", 1), split.get("valid", 0.1), split.get("test", 0.1)
    out = np.zeros(n, dtype=np.int8)
    for r in range(n):
        u = unit_hash(seed, r)
        out[r] = 2 if u < test else (1 if u < test + valid else 0)
    return out


def features(data: dict, frame: pd.DataFrame, part: np.ndarray):
    """Categorical columns as OOV-mapped strings, numeric columns transformed."""
    train = part == 0
    cats = {}
    for c in data.get("categorical", []):
        col = frame[c]
        seen = set(col[train & col.notna()])
        cats[c] = col.where(col.isin(seen), OOV).astype(str)
    nums = {}
    for spec in data.get("numeric", []):
        c, t = spec["column"], spec.get("transform", "none")
        x = frame[c].astype(float)
        if x.isna().any():
            sys.exit(f"numeric column {c} has missing values; the scalar transforms refuse them")
        if t == "log1p":
            x = np.log1p(x)
        elif t == "standardize":
            mean, sd = x[train].mean(), x[train].std(ddof=0)
            x = (x - mean) / (sd if sd > 0 else 1.0)
        elif t != "none":
            sys.exit(f"{c}: transform {t!r} is an encoding of mtlbench's own; run the scalar grid (experiments/adult.toml)")
        nums[c] = x.to_numpy()
    return pd.DataFrame(cats), pd.DataFrame(nums)


def labels(data: dict, frame: pd.DataFrame):
    out = {}
    for spec in data["labels"]:
        col = frame[spec["column"]]
        y = (col == spec["equals"]) if "equals" in spec else col.astype(float)
        out[spec.get("name", spec["column"])] = y.astype(int).to_numpy()
    return out


def aucs(model, x, y, part):
    return [roc_auc_score(y[part == k], model.predict_proba(x[part == k])[:, 1]) for k in (1, 2)]


def logistic(cats, nums, ys, part):
    onehot = pd.get_dummies(cats, dtype=float)
    train = part == 0
    z = (nums - nums[train].mean()) / nums[train].std(ddof=0).replace(0, 1)
    x = np.hstack([onehot.to_numpy(), z.to_numpy()])
    out = {}
    for task, y in ys.items():
        best = None
        for c in (0.01, 0.1, 1.0, 10.0):
            m = LogisticRegression(C=c, max_iter=5000).fit(x[train], y[train])
            v, t = aucs(m, x, y, part)
            if best is None or v > best["valid"]:
                best = {"valid": v, "test": t, "C": c}
        out[task] = best
    return out


def boosting(cats, nums, ys, part, grid, states=(1, 2, 3)):
    codes = cats.apply(lambda s: s.astype("category").cat.codes)
    x = pd.concat([codes, nums], axis=1).to_numpy()
    is_cat = [True] * codes.shape[1] + [False] * nums.shape[1]
    train = part == 0
    out = {}
    for task, y in ys.items():
        best = None
        for params in grid:
            runs = []
            for s in states:
                m = HistGradientBoostingClassifier(categorical_features=is_cat, random_state=s, **params)
                runs.append(aucs(m.fit(x[train], y[train]), x, y, part))
            v, t = np.mean(runs, axis=0)
            if best is None or v > best["valid"]:
                best = {"valid": float(v), "test": float(t), "test_sd": float(np.std([r[1] for r in runs], ddof=1)), "params": params}
        out[task] = best
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("grid", nargs="?", default="experiments/adult.toml")
    ap.add_argument("--json", help="write the numbers here as JSON")
    args = ap.parse_args()
    with open(args.grid, "rb") as f:
        data = tomllib.load(f)["data"]
    t0 = time.time()
    na = data.get("na_values", ["", "NA", "NaN", "null"])
    frame = pd.read_csv(data["path"], dtype=str, keep_default_na=False, na_values=na, skipinitialspace=True)
    frame = frame.apply(lambda s: s.str.strip())
    part = split_of(len(frame), data.get("split", {}))
    counts = tuple(int((part == k).sum()) for k in range(3))
    position_sum = int(np.flatnonzero(part == 2).sum())
    print(f"rows train/valid/test {counts}, test position sum {position_sum}")
    if args.grid.endswith("adult.toml") and (counts, position_sum) != (EXPECTED_ADULT["rows"], EXPECTED_ADULT["test_position_sum"]):
        sys.exit(f"split differs from mtlbench's: expected {EXPECTED_ADULT}")
    cats, nums = features(data, frame, part)
    ys = labels(data, frame)
    small = [
        {"learning_rate": lr, "max_leaf_nodes": leaves, "max_iter": 1000, "early_stopping": True}
        for lr in (0.05, 0.1)
        for leaves in (15, 31, 63)
    ]
    results = {
        "logistic regression (C on validation)": logistic(cats, nums, ys, part),
        "HistGradientBoosting (defaults)": boosting(cats, nums, ys, part, [{}]),
        "HistGradientBoosting (6 settings, chosen on validation)": boosting(cats, nums, ys, part, small),
    }
    import sklearn

    meta = {
        "grid": args.grid,
        "rows": counts,
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "python": platform.python_version(),
        "sklearn": sklearn.__version__,
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d"),
        "seconds": round(time.time() - t0, 1),
    }
    print(f"{'model':<58} {'task':<14} {'valid AUC':>9} {'test AUC':>9}")
    for name, per_task in results.items():
        for task, r in per_task.items():
            print(f"{name:<58} {task:<14} {r['valid']:>9.4f} {r['test']:>9.4f}")
    print(json.dumps(meta))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"meta": meta, "results": results}, f, indent=1)


if __name__ == "__main__":
    main()
