#!/usr/bin/env python3
"""The PyTorch eager reference of `bench-perf` (src/bin/bench_perf/perf/).

    perf_reference.py train DIR --model mmoe|ple|shared-bottom [--compile]
    perf_reference.py auc LABELS.bin SCORES.bin

`train` reads the exchange folder mtlbench wrote (manifest.json plus raw
little-endian arrays): the train and test rows, the batch order and the
model's initial weights. It builds the same architecture as mtlbench in plain
eager PyTorch (nn.Embedding / nn.Linear / nn.BatchNorm1d / nn.Dropout
modules; experts of one set as one batched einsum, as mtlbench stores them;
softmax gates mixed with torch.matmul), checks that the initial weights give
the probabilities mtlbench computed, trains with torch.optim.Adam (the
defaults) on the same batches, and prints one JSON line: samples/s over the
timed steps, the median step time and the test AUC per task.

With `--compile` the training forward (and so its backward) runs under
torch.compile (inductor, default mode; on the CPU it needs the interpreter's
Python headers and a C++ compiler); Adam stays eager. The first step, which
traces and compiles, is reported apart as compile_seconds (its time beyond
a timed step); the warm-up steps absorb any recompilation. Evaluation runs
the same modules eagerly.

`auc` times scikit-learn's roc_auc_score on the given labels and scores.

Run it through `bench-perf`, which sets the threads and OMP_WAIT_POLICY for
both sides alike; `make perf-setup` installs torch 2.11, numpy and
scikit-learn for it.
"""

import argparse
import json
import os
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

FORMAT = 1


def load_array(d, info):
    dtype = {"f32": "<f4", "i64": "<i8"}[info["dtype"]]
    a = np.fromfile(os.path.join(d, info["file"]), dtype=dtype)
    n = int(np.prod(info["shape"])) if info["shape"] else 1
    if a.size != n:
        sys.exit(f"{info['file']}: {a.size} values, expected {n} for shape {info['shape']}")
    return torch.from_numpy(a.reshape(info["shape"]))


class Split:
    def __init__(self, d, files):
        self.rows = files["rows"]
        self.categorical = load_array(d, files["categorical"])
        self.multi_ids = [load_array(d, a) for a in files["multi_ids"]]
        self.multi_mask = [load_array(d, a) for a in files["multi_mask"]]
        self.dense = load_array(d, files["dense"])
        self.labels = load_array(d, files["labels"])

    def select(self, idx):
        return (
            self.categorical.index_select(0, idx),
            [t.index_select(0, idx) for t in self.multi_ids],
            [t.index_select(0, idx) for t in self.multi_mask],
            self.dense.index_select(0, idx),
            self.labels.index_select(0, idx),
        )

    def rows_between(self, a, b):
        return (
            self.categorical[a:b],
            [t[a:b] for t in self.multi_ids],
            [t[a:b] for t in self.multi_mask],
            self.dense[a:b],
            self.labels[a:b],
        )


class InputLayer(nn.Module):
    """One table per categorical field, mean-pooled multi-valued fields, dense features."""

    def __init__(self, schema, dims):
        super().__init__()
        self.cat_names = [f["name"] for f in schema["categorical"]]
        self.emb = nn.ModuleDict()
        for f in schema["categorical"]:
            self.emb[f["name"]] = nn.Embedding(f["vocab_size"], dims[f["name"]])
        self.multi_tables = []
        for f in schema["multi"]:
            table = f["shares_table_with"] or f["name"]
            if f["shares_table_with"] is None:
                self.emb[f["name"]] = nn.Embedding(f["vocab_size"], dims[f["name"]])
            self.multi_tables.append(table)
        self.out_dim = len(schema["dense"]) + sum(dims[n] for n in self.cat_names) + sum(dims[t] for t in self.multi_tables)

    def forward(self, cat, multi_ids, multi_mask, dense):
        parts = [dense] + [self.emb[n](cat[:, i]) for i, n in enumerate(self.cat_names)]
        for table, ids, mask in zip(self.multi_tables, multi_ids, multi_mask):
            e = self.emb[table](ids)
            parts.append((e * mask.unsqueeze(-1)).sum(1) / mask.sum(1, keepdim=True).clamp_min(1.0))
        return torch.cat(parts, 1)

    def rust_names(self):
        return {f"shared.input.emb.{n}.weight": m.weight for n, m in self.emb.items()}


class ExpertSet(nn.Module):
    """n experts of identical Dense(ReLU) layers, weights stacked [n, in, out]."""

    def __init__(self, n, in_dim, hidden):
        super().__init__()
        self.weights, self.biases = nn.ParameterList(), nn.ParameterList()
        d = in_dim
        for h in hidden:
            self.weights.append(nn.Parameter(torch.empty(n, d, h)))
            self.biases.append(nn.Parameter(torch.empty(n, h)))
            d = h
        self.out_dim = d

    def forward(self, x):
        h = torch.einsum("bi,nio->bno", x, self.weights[0])
        h = torch.relu(h + self.biases[0])
        for w, b in zip(list(self.weights)[1:], list(self.biases)[1:]):
            h = torch.relu(torch.einsum("bni,nio->bno", h, w) + b)
        return h

    def rust_names(self, prefix):
        out = {}
        for i, (w, b) in enumerate(zip(self.weights, self.biases)):
            out[f"{prefix}.l{i}.weight"] = w
            out[f"{prefix}.l{i}.bias"] = b
        return out


class Gate(nn.Module):
    def __init__(self, in_dim, n):
        super().__init__()
        self.linear = nn.Linear(in_dim, n, bias=False)

    def forward(self, x):
        return torch.softmax(self.linear(x), -1)


def mix(w, experts):
    return torch.matmul(w.unsqueeze(1), experts).squeeze(1)


class Tower(nn.Module):
    """Dense(ReLU) -> Dropout -> BatchNorm per hidden layer, then a logit."""

    def __init__(self, in_dim, cfg):
        super().__init__()
        layers, self.names = [], []
        d = in_dim
        for i, h in enumerate(cfg["hidden"]):
            layers += [nn.Linear(d, h), nn.ReLU()]
            self.names.append((f"l{i}", len(layers) - 2))
            if cfg["dropout"] > 0:
                layers.append(nn.Dropout(cfg["dropout"]))
            if cfg["batch_norm"]:
                # PyTorch's momentum convention, as mtlbench's config states it.
                layers.append(nn.BatchNorm1d(h, eps=cfg["batch_norm_eps"], momentum=cfg["batch_norm_momentum"]))
                self.names.append((f"bn{i}", len(layers) - 1))
            d = h
        self.body = nn.Sequential(*layers)
        self.logit = nn.Linear(d, 1)

    def forward(self, x):
        return self.logit(self.body(x)).squeeze(-1)

    def rust_names(self, prefix):
        out = {}
        for name, i in self.names:
            m = self.body[i]
            out[f"{prefix}.{name}.weight"] = m.weight
            out[f"{prefix}.{name}.bias"] = m.bias
            if isinstance(m, nn.BatchNorm1d):
                out[f"{prefix}.{name}.running_mean"] = m.running_mean
                out[f"{prefix}.{name}.running_var"] = m.running_var
        out[f"{prefix}.logit.weight"] = self.logit.weight
        out[f"{prefix}.logit.bias"] = self.logit.bias
        return out


class Mmoe(nn.Module):
    def __init__(self, in_dim, heads, cfg):
        super().__init__()
        self.experts = ExpertSet(cfg["experts"], in_dim, cfg["expert_hidden"])
        self.gates = nn.ModuleList([Gate(in_dim, cfg["experts"]) for _ in range(heads)])
        self.out_dim = self.experts.out_dim

    def forward(self, x):
        e = self.experts(x)
        return [mix(g(x), e) for g in self.gates]

    def rust_names(self):
        out = self.experts.rust_names("shared.mmoe.experts")
        for k, g in enumerate(self.gates):
            out[f"task.{k}.gate.weight"] = g.linear.weight
        return out


class Ple(nn.Module):
    """CGC levels with separate task and shared streams (the paper's form)."""

    def __init__(self, in_dim, heads, cfg):
        super().__init__()
        mt, ms, hid, n_levels = cfg["task_experts"], cfg["shared_experts"], cfg["expert_hidden"], cfg["levels"]
        self.levels = nn.ModuleList()
        d = in_dim
        for l in range(1, n_levels + 1):
            level = nn.Module()
            level.task_experts = nn.ModuleList([ExpertSet(mt, d, hid) for _ in range(heads)])
            level.shared_experts = ExpertSet(ms, d, hid)
            level.task_gates = nn.ModuleList([Gate(d, mt + ms) for _ in range(heads)])
            level.shared_gate = Gate(d, heads * mt + ms) if l < n_levels else None
            self.levels.append(level)
            d = hid[-1]
        self.out_dim = d

    def forward(self, x):
        heads = len(self.levels[0].task_gates)
        task_in, shared_in = [x] * heads, x
        for level in self.levels:
            own = [e(xi) for e, xi in zip(level.task_experts, task_in)]
            shared = level.shared_experts(shared_in)
            task_out = [mix(g(task_in[h]), torch.cat([own[h], shared], 1)) for h, g in enumerate(level.task_gates)]
            if level.shared_gate is not None:
                shared_in = mix(level.shared_gate(shared_in), torch.cat(own + [shared], 1))
            task_in = task_out
        return task_in

    def rust_names(self):
        out, n = {}, len(self.levels)
        for l, level in enumerate(self.levels, start=1):
            last = l == n
            base = f"shared.ple.l{l}"
            for h, e in enumerate(level.task_experts):
                out.update(e.rust_names(f"task.{h}.ple.l{l}.experts" if last else f"{base}.task{h}.experts"))
            out.update(level.shared_experts.rust_names(f"{base}.shared.experts"))
            for h, g in enumerate(level.task_gates):
                where = f"{base}.task{h}" if l + 1 < n else f"task.{h}.ple.l{l}"
                out[f"{where}.gate.weight"] = g.linear.weight
            if level.shared_gate is not None:
                out[f"{base}.shared.gate.weight"] = level.shared_gate.linear.weight
        return out


class SharedBottom(nn.Module):
    def __init__(self, in_dim, heads, cfg):
        super().__init__()
        self.layers = nn.ModuleList()
        d = in_dim
        for h in cfg["bottom"]:
            self.layers.append(nn.Linear(d, h))
            d = h
        self.heads, self.out_dim = heads, d

    def forward(self, x):
        for lin in self.layers:
            x = torch.relu(lin(x))
        return [x] * self.heads

    def rust_names(self):
        out = {}
        for i, lin in enumerate(self.layers):
            out[f"shared.bottom.l{i}.weight"] = lin.weight
            out[f"shared.bottom.l{i}.bias"] = lin.bias
        return out


class MultiTask(nn.Module):
    """Input layer -> backbone -> one tower per task."""

    def __init__(self, kind, schema, cfg, dims):
        super().__init__()
        self.input = InputLayer(schema, dims)
        heads = len(schema["tasks"])
        backbone = {"mmoe": (Mmoe, "mmoe"), "ple": (Ple, "ple"), "shared-bottom": (SharedBottom, "shared-bottom")}[kind]
        self.backbone = backbone[0](self.input.out_dim, heads, cfg[backbone[1]])
        self.towers = nn.ModuleList([Tower(self.backbone.out_dim, cfg["tower"]) for _ in range(heads)])

    def forward(self, cat, multi_ids, multi_mask, dense):
        x = self.input(cat, multi_ids, multi_mask, dense)
        return torch.stack([t(h) for t, h in zip(self.towers, self.backbone(x))], 1)

    def rust_names(self):
        out = self.input.rust_names()
        out.update(self.backbone.rust_names())
        for k, t in enumerate(self.towers):
            out.update(t.rust_names(f"task.{k}.tower"))
        return out


def load_weights(model, d, files):
    names = model.rust_names()
    flat = load_array(d, {"file": files["weights_file"], "dtype": "f32", "shape": [os.path.getsize(os.path.join(d, files["weights_file"])) // 4]})
    seen = set()
    with torch.no_grad():
        for w in files["weights"]:
            t = names.get(w["name"])
            if t is None:
                sys.exit(f"{files['weights_file']}: variable {w['name']} has no counterpart in the reference")
            if list(t.shape) != w["shape"]:
                sys.exit(f"{w['name']}: shape {w['shape']} in the file, {list(t.shape)} in the reference")
            n = int(np.prod(w["shape"]))
            t.copy_(flat[w["offset"] : w["offset"] + n].view(w["shape"]))
            seen.add(w["name"])
    missing = sorted(set(names) - seen)
    if missing:
        sys.exit(f"reference variables missing from {files['weights_file']}: {missing}")


def peak_rss_mib():
    """This process's VmHWM (peak resident set), as mtlbench reports its own."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    return None


def predict(model, split, batch):
    model.eval()
    out = []
    with torch.no_grad():
        for a in range(0, split.rows, batch):
            cat, ids, mask, dense, _ = split.rows_between(a, min(a + batch, split.rows))
            out.append(torch.sigmoid(model(cat, ids, mask, dense)))
    model.train()
    return torch.cat(out, 0)


def train(args):
    from sklearn.metrics import roc_auc_score

    d = args.dir
    m = json.load(open(os.path.join(d, "manifest.json")))
    if m["format"] != FORMAT:
        sys.exit(f"manifest format {m['format']}, this script reads {FORMAT}")
    s = m["train"]
    torch.set_num_threads(m["threads"])
    files = next((x for x in m["models"] if x["kind"] == args.model), None)
    if files is None:
        sys.exit(f"no initial weights for model {args.model} in {d}")
    dims = {w["name"].split(".")[3]: w["shape"][1] for w in files["weights"] if w["name"].startswith("shared.input.emb.")}
    model = MultiTask(args.model, m["schema"], m["models_config"], dims)
    load_weights(model, d, files)
    train_split, test_split = Split(d, m["train_split"]), Split(d, m["test_split"])
    order = load_array(d, m["order"])

    want = load_array(d, files["check_probs"])
    k = want.shape[0]
    model.eval()
    with torch.no_grad():
        cat, ids, mask, dense, _ = test_split.rows_between(0, k)
        got = torch.sigmoid(model(cat, ids, mask, dense))
    model.train()
    check = float((got - want).abs().max())

    opt = torch.optim.Adam(model.parameters(), lr=s["lr"], betas=(s["beta1"], s["beta2"]), eps=s["eps"], weight_decay=s["weight_decay"])
    b, n_tasks = s["batch_size"], len(m["schema"]["tasks"])
    # Round r of bench-perf seeds the dropout masks with seed + r just before
    # the first step, as the mtlbench side does (weights come from the
    # folder, order from the manifest). With the models' dropout_masks =
    # "libtorch", mtlbench draws its masks with libtorch's dropout from the
    # same generator state: the same masks as nn.Dropout here.
    step_model = torch.compile(model) if args.compile else model
    first_step = None
    torch.manual_seed(s["seed"] + args.round)
    times, losses = [], []
    timed_start, cpu_start = time.perf_counter(), time.process_time()
    for step in range(s["steps"]):
        if step == s["warmup"]:
            timed_start, cpu_start = time.perf_counter(), time.process_time()
        t0 = time.perf_counter()
        cat, ids, mask, dense, labels = train_split.select(order[step * b : (step + 1) * b])
        logits = step_model(cat, ids, mask, dense)
        loss = sum(F.binary_cross_entropy_with_logits(logits[:, t], labels[:, t]) for t in range(n_tasks))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
        if step == 0:
            first_step = time.perf_counter() - t0
        if step >= s["warmup"]:
            times.append(time.perf_counter() - t0)
    timed_seconds = time.perf_counter() - timed_start
    timed_cpu_seconds = time.process_time() - cpu_start
    if not torch.isfinite(loss):
        sys.exit(f"the reference diverged: loss {float(loss)}")

    probs = predict(model, test_split, s["eval_batch_size"])
    aucs = []
    for t, name in enumerate(m["schema"]["tasks"]):
        y = test_split.labels[:, t].numpy()
        ok = 0 < y.sum() < len(y)
        aucs.append([name, float(roc_auc_score(y, probs[:, t].numpy())) if ok else None])
    median_step = sorted(times)[len(times) // 2]
    out = {}
    if args.compile:
        out["compile_seconds"] = max(first_step - median_step, 0.0)
    print(json.dumps({
        **out,
        "side": "compiled" if args.compile else "pytorch",
        "model": args.model,
        "threads": m["threads"],
        "batch_size": b,
        "steps": s["steps"],
        "timed_steps": len(times),
        "timed_seconds": timed_seconds,
        "timed_cpu_seconds": timed_cpu_seconds,
        "samples_per_second": len(times) * b / timed_seconds,
        "median_step_ms": 1e3 * median_step,
        "test_auc": aucs,
        "check_max_abs_diff": check,
        "peak_rss_mib": peak_rss_mib(),
        "losses": losses,
    }))


def auc(args):
    from sklearn.metrics import roc_auc_score

    y = np.fromfile(args.labels, dtype="<f4")
    p = np.fromfile(args.scores, dtype="<f4")
    times, value = [], None
    for _ in range(3):
        t = time.perf_counter()
        value = roc_auc_score(y > 0.5, p)
        times.append(time.perf_counter() - t)
    print(json.dumps({"rows": int(y.size), "seconds": sorted(times)[1], "auc": float(value)}))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train")
    t.add_argument("dir")
    t.add_argument("--model", required=True, choices=["mmoe", "ple", "shared-bottom"])
    t.add_argument("--round", type=int, default=0)
    t.add_argument("--compile", action="store_true", help="train under torch.compile (inductor)")
    a = sub.add_parser("auc")
    a.add_argument("labels")
    a.add_argument("scores")
    args = ap.parse_args()
    train(args) if args.command == "train" else auc(args)


if __name__ == "__main__":
    main()
