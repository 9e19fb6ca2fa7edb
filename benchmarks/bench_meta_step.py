"""Meta-step cost against the number of unrolled steps T, for each inner-loop backend.

Rows: ``func`` (torch.func.functional_call unroll), ``func+ckpt`` (the same with per-step activation
checkpointing), ``higher`` (innerloop_ctx), beside

(a) ``ssnl-ref``: a plain SsnL-style reference written here: a forward pass that keeps only the flat
    weight vector of each step, then a hand-written reverse pass over the steps that carries the adjoint
    of the weights and, per step, recomputes the step's gradient and takes one vector-Jacobian product
    (as SsnL/dataset-distillation's ``train_distilled_image.backward`` does);
(b) ``sgd-floor``: T plain SGD steps of the same network on the same distilled images, no meta-gradient
    (the cost floor).

Each configuration runs in a fresh subprocess (one torch thread) so that its peak memory can be read from
the kernel: the reported figure is the rise of the peak resident set during the meta-steps above the
resident set after a warm-up (imports, network, data, one plain forward/backward), read as ``VmHWM`` of
``/proc/self/status`` after resetting it (``/proc/self/clear_refs``; ``peak_source: "VmHWM after reset"``
in the JSON), or, where that reset is refused, as the rise of ``ru_maxrss`` (a lower bound). CPU torch has
no allocator statistics, and tracemalloc does not see torch's memory.

    .venv/bin/python benchmarks/bench_meta_step.py            # T = 10, 30, 100, about 1 min on 2 cores
    .venv/bin/python benchmarks/bench_meta_step.py --T 10 30 --repeats 2 --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

from proc_memory import reset_peak_rss, status_kib  # benchmarks/proc_memory.py

METHODS = ("func", "func+ckpt", "higher", "ssnl-ref", "sgd-floor")


def build(T: int, width: int, size: int, batch: int, ipc: int = 5):
    import torch

    from gastrodistill.distillation.distilled_set import DistilledSet
    from gastrodistill.models import ConvNet, initialize
    from gastrodistill.utils.seeding import torch_generator

    k, steps = 10, 10
    ds = DistilledSet(k, ipc, steps, max(1, T // steps), (1, size, size), lr_init=0.02, label_init_scale=3.0)
    ds.init_noise(torch_generator(0, "bench-images"))
    net = ConvNet(1, k, (size, size), width=width, depth=3)
    initialize(net, "xavier", torch_generator(0, "bench-net"))
    gen = torch_generator(0, "bench-real")
    x = torch.randn(batch, 1, size, size, generator=gen)
    y = torch.randint(0, k, (batch,), generator=gen)
    return ds, net, x, y


def ssnl_reference(net, ds, x, y):
    """SsnL-style meta-gradient: keep flat weights per step, then a hand-written reverse pass over steps."""
    import torch
    import torch.nn.functional as F
    from torch.func import functional_call

    names = [n for n, _ in net.named_parameters()]
    shapes = [p.shape for _, p in net.named_parameters()]
    sizes = [p.numel() for _, p in net.named_parameters()]

    def unflat(w):
        return dict(
            zip(names, (t.view(s) for t, s in zip(torch.split(w, sizes), shapes, strict=True)), strict=True)
        )

    def loss_at(w, xb, target):
        return F.cross_entropy(functional_call(net, unflat(w), (xb,)), target)

    T = ds.num_inner_steps
    w = torch.cat([p.detach().reshape(-1) for p in net.parameters()])
    ws = []
    with torch.no_grad():  # forward: only the weights of each step are kept
        lr_vals = ds.lrs().detach()
        for t in range(T):
            ws.append(w)
            xb, pb = ds.batch(t)
            with torch.enable_grad():
                wt = w.detach().requires_grad_(True)
                g = torch.autograd.grad(loss_at(wt, xb.detach(), pb.detach()), wt)[0]
            w = w - lr_vals[t] * g
    wT = w.detach().requires_grad_(True)
    outer = loss_at(wT, x, y)
    dw = torch.autograd.grad(outer, wT)[0]  # adjoint of the final weights
    grads = {n: torch.zeros_like(p) for n, p in ds.named_parameters()}
    for t in reversed(range(T)):  # w_{t+1} = w_t - lr_t * g(w_t, data_t)
        wt = ws[t].detach().requires_grad_(True)
        xb, pb = ds.batch(t)
        g = torch.autograd.grad(loss_at(wt, xb, pb), wt, create_graph=True)[0]
        step = wt - ds.lrs()[t] * g  # a fresh softplus graph per step (each is freed after its VJP)
        inputs = [wt, ds.images, ds.raw_lrs] + ([ds.label_logits] if ds.label_logits.requires_grad else [])
        vjp = torch.autograd.grad(step, inputs, grad_outputs=dw, allow_unused=True)
        dw = vjp[0]
        for name, v in zip(["images", "raw_lrs", "label_logits"], vjp[1:], strict=False):
            if v is not None:
                grads[name] += v
    return outer.detach(), grads


def one_step(method: str, net, ds, x, y):

    from gastrodistill.distillation.inner_loop import outer_loss, release_template, sgd_step

    ds.zero_grad(set_to_none=True)
    if method == "sgd-floor":
        for t in range(ds.num_inner_steps):
            xb, pb = ds.batch(t)
            sgd_step(net, xb.detach(), pb.detach(), 0.02)
        return None
    if method == "ssnl-ref":
        return ssnl_reference(net, ds, x, y)[1]
    backend, ckpt = ("func", True) if method == "func+ckpt" else (method, False)
    loss, _ = outer_loss(net, ds, x, y, backend, ckpt)
    loss.backward()
    release_template(net)
    return {n: p.grad for n, p in ds.named_parameters() if p.grad is not None}


def worker(method: str, T: int, width: int, size: int, batch: int, ipc: int, repeats: int) -> dict:
    import torch
    import torch.nn.functional as F

    torch.set_num_threads(1)
    ds, net, x, y = build(T, width, size, batch, ipc)
    F.cross_entropy(net(x), y).backward()  # warm-up: kernels, allocator
    net.zero_grad(set_to_none=True)
    rss_before = status_kib("VmRSS")
    hwm_reset = reset_peak_rss()
    base = status_kib("VmHWM") if hwm_reset else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        one_step(method, net, ds, x, y)
        times.append(time.perf_counter() - start)
    peak = status_kib("VmHWM") if hwm_reset else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "method": method,
        "T": T,
        "seconds": statistics.median(times),
        "peak_mib": (peak - rss_before) / 1024 if hwm_reset else (peak - base) / 1024,
        "peak_source": "VmHWM after reset" if hwm_reset else "ru_maxrss delta (lower bound)",
    }


def check_agreement(T: int, width: int, size: int, batch: int, ipc: int) -> float:
    """Max relative difference between the SsnL-style reference and the func backend (float64)."""
    import torch

    torch.set_num_threads(1)
    ds, net, x, y = build(T, width, size, batch, ipc)
    ds.double()
    net.double()
    x = x.double()
    ref = ssnl_reference(net, ds, x, y)[1]
    ours = one_step("func", net, ds, x, y)
    return max(float((ref[n] - ours[n]).abs().max() / ours[n].abs().max().clamp_min(1e-30)) for n in ours)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--T", type=int, nargs="+", default=[10, 30, 100], help="unroll lengths (inner steps)")
    ap.add_argument("--width", type=int, default=16, help="ConvNet width")
    ap.add_argument("--size", type=int, default=16, help="image side, px")
    ap.add_argument("--batch", type=int, default=256, help="real images in the outer loss")
    ap.add_argument("--ipc", type=int, default=5, help="distilled images per class per step")
    ap.add_argument("--repeats", type=int, default=3, help="timed meta-steps per row")
    ap.add_argument("--json", default=None, help="also write the rows to this JSON file")
    ap.add_argument("--_worker", nargs=2, metavar=("METHOD", "T"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    shape = (args.width, args.size, args.batch, args.ipc)
    if args._worker:
        print(json.dumps(worker(args._worker[0], int(args._worker[1]), *shape, args.repeats)))
        return
    print(
        f"ConvNet(width={args.width}, depth=3), 10 classes x {args.ipc} ipc of 1x{args.size}x{args.size} "
        f"per step, "
        f"real batch {args.batch}, 1 CPU thread; median of {args.repeats} meta-steps"
    )
    print(
        f"float64 agreement, SsnL-style reference vs func backend (T=10): "
        f"max rel. diff {check_agreement(10, *shape):.1e}"
    )
    rows = []
    for T in args.T:
        for method in METHODS:
            cmd = [
                sys.executable,
                __file__,
                "--_worker",
                method,
                str(T),
                "--width",
                str(args.width),
                "--size",
                str(args.size),
                "--batch",
                str(args.batch),
                "--ipc",
                str(args.ipc),
                "--repeats",
                str(args.repeats),
            ]
            env = {**os.environ, "OMP_NUM_THREADS": "1"}
            out = subprocess.run(cmd, capture_output=True, text=True, check=True, env=env).stdout
            rows.append(json.loads(out.strip().splitlines()[-1]))
            print(
                f"  T={T:<4} {method:<10} {rows[-1]['seconds']:.3f} s  {rows[-1]['peak_mib']:.0f} MiB",
                flush=True,
            )
    by = {(r["T"], r["method"]): r for r in rows}
    print()
    print(
        "| T | method | time/meta-step (s) | peak mem (MiB) | time vs (a) ssnl-ref | time vs (b) sgd-floor "
        "| mem vs (a) |"
    )
    print("|---|---|---|---|---|---|---|")
    for T in args.T:
        ref, floor = by[(T, "ssnl-ref")], by[(T, "sgd-floor")]
        for method in METHODS:
            r = by[(T, method)]
            mem_ratio = r["peak_mib"] / ref["peak_mib"] if ref["peak_mib"] > 0 else float("nan")
            print(
                f"| {T} | {method} | {r['seconds']:.3f} | {r['peak_mib']:.0f} "
                f"| {r['seconds'] / ref['seconds']:.2f} "
                f"| {r['seconds'] / floor['seconds']:.1f} | {mem_ratio:.2f} |"
            )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=2)


if __name__ == "__main__":
    main()
