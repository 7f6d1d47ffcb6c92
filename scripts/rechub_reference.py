#!/usr/bin/env python3
"""The torch-rechub side of `bench-perf rechub` (src/bin/bench_perf/perf/rechub.rs).

    rechub_reference.py train DIR [--loader fast|dataloader] [--round R]

Reads the exchange folder mtlbench wrote (the table's train and test rows,
the batch order, mtlbench's initial weights), builds torch-rechub 0.9.0's
MMOE on the same features (one SparseFeature of width 4 per categorical
field, one DenseFeature per numeric column; n_expert experts of the same
hidden widths, towers of the same widths) and trains it with torch-rechub's
MTLTrainer.train_one_epoch, unchanged, on the same batches in the same order:

- `--loader fast`: the batches come from tensors built once, one
  `index_select` per column per batch (what a user who cares writes);
- `--loader dataloader`: torch-rechub's own path, its TorchDataset in a
  torch DataLoader whose sampler yields the same row order.

The embedding tables start from mtlbench's initial rows; the dense layers
start from torch-rechub's own initialisation (its layers are not mtlbench's:
batch norm inside every expert and gate, see docs/performance.md). Prints one
JSON line: samples/s over the timed steps (the steps after the untimed
warm-up epoch call), the median step time (time between two batches the
trainer takes from the loader) and the test AUC per task.

`make perf-rechub` installs torch-rechub==0.9.0 into the perf environment
(scripts/setup-perf-python.sh --rechub) and runs it through bench-perf.
"""

import argparse
import json
import os
import sys
import tempfile
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from perf_reference import FORMAT, Split, load_array, load_weights, peak_rss_mib  # noqa: E402,F401


class FastLoader:
    """Batches by index_select from tensors built once, in the manifest's order.

    Records the time at which the trainer takes each batch: the difference of
    two is one training step (batch assembly included).
    """

    def __init__(self, x, y, order, batch, steps):
        self.x, self.y, self.order, self.batch, self.steps = x, y, order, batch, steps
        self.stamps = []

    def __len__(self):
        return len(self.steps)

    def __iter__(self):
        for step in self.steps:
            self.stamps.append(time.perf_counter())
            idx = self.order[step * self.batch : (step + 1) * self.batch]
            yield {k: v.index_select(0, idx) for k, v in self.x.items()}, self.y.index_select(0, idx)
        self.stamps.append(time.perf_counter())


def columns(schema, split):
    """torch-rechub's input: a dict of one column per feature."""
    x = {f["name"]: split.categorical[:, i].contiguous() for i, f in enumerate(schema["categorical"])}
    x.update({name: split.dense[:, i].contiguous() for i, name in enumerate(schema["dense"])})
    return x


def build(m, files):
    from torch_rechub.basic.features import DenseFeature, SparseFeature
    from torch_rechub.models.multi_task import MMOE

    schema, cfg = m["schema"], m["models_config"]
    dims = {w["name"].split(".")[3]: w["shape"][1] for w in files["weights"] if w["name"].startswith("shared.input.emb.")}
    features = [SparseFeature(f["name"], vocab_size=f["vocab_size"], embed_dim=dims[f["name"]]) for f in schema["categorical"]]
    features += [DenseFeature(name) for name in schema["dense"]]
    n = len(schema["tasks"])
    tower = {"dims": cfg["tower"]["hidden"], "dropout": cfg["tower"]["dropout"]}
    model = MMOE(features, ["classification"] * n, n_expert=cfg["mmoe"]["experts"],
                 expert_params={"dims": cfg["mmoe"]["expert_hidden"]}, tower_params_list=[tower] * n)
    flat = load_array(m["dir"], {"file": files["weights_file"], "dtype": "f32",
                                 "shape": [os.path.getsize(os.path.join(m["dir"], files["weights_file"])) // 4]})
    with torch.no_grad():
        for w in files["weights"]:
            if w["name"].startswith("shared.input.emb."):
                table = model.embedding.embed_dict[w["name"].split(".")[3]].weight
                k = int(np.prod(w["shape"]))
                table.copy_(flat[w["offset"] : w["offset"] + k].view(w["shape"]))
    return model


def train(args):
    from torch.utils.data import DataLoader
    from torch_rechub.trainers import MTLTrainer
    from torch_rechub.utils.data import TorchDataset

    d = args.dir
    m = json.load(open(os.path.join(d, "manifest.json")))
    if m["format"] != FORMAT:
        sys.exit(f"manifest format {m['format']}, this script reads {FORMAT}")
    m["dir"] = d
    s, schema = m["train"], m["schema"]
    torch.set_num_threads(m["threads"])
    files = next((x for x in m["models"] if x["kind"] == "mmoe"), None)
    if files is None:
        sys.exit(f"no initial mmoe weights in {d}")
    model = build(m, files)
    train_split, test_split = Split(d, m["train_split"]), Split(d, m["test_split"])
    order = load_array(d, m["order"])
    b, steps, warmup = s["batch_size"], s["steps"], s["warmup"]
    n_tasks = len(schema["tasks"])
    optim = {"lr": s["lr"], "betas": (s["beta1"], s["beta2"]), "eps": s["eps"], "weight_decay": s["weight_decay"]}
    with tempfile.TemporaryDirectory() as model_path:
        trainer = MTLTrainer(model, ["classification"] * n_tasks, optimizer_params=optim, n_epoch=1,
                             device="cpu", model_path=model_path)
        x, y = columns(schema, train_split), train_split.labels
        if args.loader == "fast":
            loaders = [FastLoader(x, y, order, b, range(0, warmup)), FastLoader(x, y, order, b, range(warmup, steps))]
        else:
            data = TorchDataset({k: v.numpy() for k, v in x.items()}, y.numpy())
            rows = order.tolist()
            loaders = [DataLoader(data, batch_size=b, sampler=rows[a * b : z * b]) for a, z in [(0, warmup), (warmup, steps)]]
        torch.manual_seed(s["seed"] + args.round)
        trainer.train_one_epoch(loaders[0])
        timed_start, cpu_start = time.perf_counter(), time.process_time()
        trainer.train_one_epoch(loaders[1])
        timed_seconds = time.perf_counter() - timed_start
        timed_cpu_seconds = time.process_time() - cpu_start
        test = FastLoader(columns(schema, test_split), test_split.labels, torch.arange(test_split.rows),
                          s["eval_batch_size"], range((test_split.rows + s["eval_batch_size"] - 1) // s["eval_batch_size"]))
        aucs = trainer.evaluate(model, test)
    timed = steps - warmup
    stamps = getattr(loaders[1], "stamps", [])
    step_times = sorted(np.diff(stamps)) if len(stamps) > 1 else [timed_seconds / max(timed, 1)]
    print(json.dumps({
        "side": "torch-rechub" if args.loader == "fast" else "torch-rechub-dataloader",
        "model": "mmoe",
        "threads": m["threads"],
        "batch_size": b,
        "steps": steps,
        "timed_steps": timed,
        "timed_seconds": timed_seconds,
        "timed_cpu_seconds": timed_cpu_seconds,
        "samples_per_second": timed * b / timed_seconds,
        "median_step_ms": 1e3 * float(step_times[len(step_times) // 2]),
        "test_auc": [[name, float(a)] for name, a in zip(schema["tasks"], aucs)],
        "peak_rss_mib": peak_rss_mib(),
    }))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train")
    t.add_argument("dir")
    t.add_argument("--loader", choices=["fast", "dataloader"], default="fast")
    t.add_argument("--round", type=int, default=0)
    args = ap.parse_args()
    train(args)


if __name__ == "__main__":
    main()
