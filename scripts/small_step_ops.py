"""ATen operators of one training step of the small tabular MMOE.

Rebuilds, operator for operator, the forward and backward pass that
mtlbench runs for MMOE on 32 categorical fields of width 4 (vocabularies
8-200, one fused table), 7 dense columns, 8 experts of [16], 2 gates,
towers [8] (Linear -> ReLU -> dropout 0.1 -> BatchNorm -> logit), batch
1024, and lists the ATen operators by self CPU time with torch.profiler.
The kernels are libtorch's, the same as tch's; only the Python dispatch
per operator is extra, and dropout draws its mask with bernoulli_ where
mtlbench hashes a counter (src/models/dropout.rs). The optimiser is left
out. docs/performance.md ("Small tabular models: operators per step") has
the tables this prints. Run it with mtlbench's allocator settings (the
MALLOC_* variables there): without them glibc maps and unmaps the
mix's 1 MB products every step and the page faults decide the timing.

    python scripts/small_step_ops.py --kernels before      # weight[ids], softmax, bmm, einsum
    python scripts/small_step_ops.py --kernels after       # their replacements, the batch first
    python scripts/small_step_ops.py --kernels batch-last  # what src/models does now: the mix with the batch last
"""
import argparse
import time

import torch
from torch.profiler import ProfilerActivity, profile

B, F, D, T, E, H, TW = 1024, 32, 7, 2, 8, 16, 8
IN = F * 4 + D


def softmax_over(z, dim=-1):
    e = (z - z.amax(dim, keepdim=True).detach()).exp()
    return e / e.sum(dim, keepdim=True)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--kernels", choices=["before", "after", "batch-last"], default="after")
    p.add_argument("--steps", type=int, default=50)
    a = p.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    vocab = [8 + (i * 37) % 193 for i in range(F)]
    offs = torch.tensor([sum(vocab[:i]) for i in range(F)])
    leaf = lambda *s: (torch.randn(*s) * 0.1).requires_grad_()
    table, ew, eb = leaf(sum(vocab), 4), leaf(E, IN, H), leaf(E, H)
    gates = [leaf(E, IN) for _ in range(T)]
    tw, tb = [leaf(TW, H) for _ in range(T)], [leaf(TW) for _ in range(T)]
    bnw = [torch.ones(TW).requires_grad_() for _ in range(T)]
    bnb = [torch.zeros(TW).requires_grad_() for _ in range(T)]
    rm, rv = [torch.zeros(TW) for _ in range(T)], [torch.ones(TW) for _ in range(T)]
    lw, lb = [leaf(1, TW) for _ in range(T)], [leaf(1) for _ in range(T)]
    params = [table, ew, eb] + gates + tw + tb + bnw + bnb + lw + lb
    ids = torch.stack([(torch.rand(B) ** 2 * v).long() for v in vocab], 1)
    dense, labels = torch.randn(B, D), (torch.rand(B, T) < 0.3).float()
    after = a.kernels != "before"

    def step():
        for q in params:
            q.grad = None
        fused = ids + offs
        if after:
            emb = table.index_select(0, fused.reshape(-1)).view(-1, F * 4)
        else:
            emb = table[fused].view(-1, F * 4)
        x = torch.cat([dense, emb], 1)
        if a.kernels == "batch-last":
            xt = x.t()
            ex = eb.reshape(-1, 1).addmm(ew.permute(0, 2, 1).reshape(E * H, IN), xt).view(E, H, -1).relu()
            w = softmax_over(torch.cat(gates, 0).mm(xt).view(T, E, -1), 1)
            heads = [y.t() for y in (w.unsqueeze(2) * ex.unsqueeze(0)).sum(1).unbind(0)]
        elif after:
            ex = eb.reshape(-1).addmm(x, ew.permute(1, 0, 2).reshape(IN, E * H)).view(-1, E, H).relu()
            w = softmax_over(torch.nn.functional.linear(x, torch.cat(gates, 0)).view(-1, T, E))
            heads = (w.unsqueeze(-1) * ex.unsqueeze(1)).sum(2).unbind(1)
        else:
            ex = (torch.einsum("bi,nio->bno", x, ew) + eb.unsqueeze(0)).relu()
            w = torch.nn.functional.linear(x, torch.cat(gates, 0)).view(-1, T, E).softmax(-1)
            heads = w.bmm(ex).unbind(1)
        logits = []
        for t in range(T):
            h = torch.nn.functional.linear(heads[t], tw[t], tb[t]).relu()
            h = h * torch.empty(h.shape).bernoulli_(0.9).mul_(1 / 0.9)
            h = torch.nn.functional.batch_norm(h, rm[t], rv[t], bnw[t], bnb[t], True, 0.01, 1e-3)
            logits.append(torch.nn.functional.linear(h, lw[t], lb[t]).squeeze(-1))
        torch.stack(logits, 1).sigmoid()
        bce = torch.nn.functional.binary_cross_entropy_with_logits
        losses = [bce(l, labels.select(1, t)) for t, l in enumerate(logits)]
        [l.item() for l in losses]
        sum(losses).backward()

    for _ in range(30):
        step()
    t0 = time.perf_counter()
    for _ in range(200):
        step()
    print(f"kernels {a.kernels}: {(time.perf_counter() - t0) / 200 * 1e3:.3f} ms per step (forward + backward, no optimiser)")
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(a.steps):
            step()
    ev = prof.key_averages()
    aten = [e for e in ev if e.key.startswith("aten::")]
    print(f"ATen operator calls per step: {sum(e.count for e in aten) / a.steps:.0f}")
    print(f"{'operator':<34} {'calls/step':>10} {'self ms/step':>13}")
    for e in sorted(aten, key=lambda e: -e.self_cpu_time_total)[:15]:
        print(f"{e.key:<34} {e.count / a.steps:>10.0f} {e.self_cpu_time_total / a.steps / 1e3:>13.3f}")


if __name__ == "__main__":
    main()
