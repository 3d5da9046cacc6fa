"""Time per training iteration (forward + direction + optimizer step) of BP, TP(graph) and
TP(local) on the same model and batches.

    python scripts/benchmark.py                       # the full grid, 1 thread
    python scripts/benchmark.py --T 120 --hidden 100  # one cell

Prints a table with TP/BP ratios and writes a CSV (T, hidden, batch, method, median_ms,
ratio_to_bp) to --out (default outputs/benchmark/benchmark.csv).
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch

import tpri

METHODS = {
    "bp": lambda: tpri.Backprop(),
    "tp_graph": lambda: tpri.TargetProp(lr_target=1e-2, reg=1.0, update="graph"),
    "tp_local": lambda: tpri.TargetProp(lr_target=1e-2, reg=1.0, update="local"),
}


def time_cell(T: int, hidden: int, batch: int, iters: int, warmup: int) -> dict[str, float]:
    """Median milliseconds per iteration of each method on the same temporal-order batches.
    The methods take turns iteration by iteration, so machine noise hits them alike."""
    task = tpri.data.make_task("temporal_order", length=T)
    gen = torch.Generator().manual_seed(0)
    batches = [task.sample(batch, gen) for _ in range(8)]
    runs = {}
    for name, make in METHODS.items():
        torch.manual_seed(0)
        model = tpri.RNN(task.input_size, hidden, task.output_size)
        opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9, nesterov=True)
        runs[name] = (make(), model, opt, [])
    for i in range(warmup + iters):
        x, y = batches[i % len(batches)]
        for method, model, opt, times in runs.values():
            start = time.perf_counter()
            opt.zero_grad(set_to_none=True)
            method.backward(model, x, y, task.loss)
            opt.step()
            times.append(time.perf_counter() - start)
    return {name: 1000 * statistics.median(times[warmup:]) for name, (*_, times) in runs.items()}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--T", type=int, nargs="+", default=[30, 60, 120, 240])
    parser.add_argument("--hidden", type=int, nargs="+", default=[32, 100, 256])
    parser.add_argument("--batch", type=int, default=20)
    parser.add_argument("--iters", type=int, default=100, help="timed iterations (median)")
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path("outputs/benchmark/benchmark.csv"))
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    rows = []
    print(f"{'T':>5} {'hidden':>6} {'BP ms':>8} {'TPg ms':>8} {'TPl ms':>8} "
          f"{'TPg/BP':>7} {'TPl/BP':>7}", flush=True)
    for T in args.T:
        for hidden in args.hidden:
            ms = time_cell(T, hidden, args.batch, args.iters, args.warmup)
            for name, value in ms.items():
                rows.append(dict(T=T, hidden=hidden, batch=args.batch, method=name,
                                 median_ms=value, ratio_to_bp=value / ms["bp"]))
            print(f"{T:>5} {hidden:>6} {ms['bp']:8.2f} {ms['tp_graph']:8.2f} "
                  f"{ms['tp_local']:8.2f} {ms['tp_graph'] / ms['bp']:7.2f} "
                  f"{ms['tp_local'] / ms['bp']:7.2f}", flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "w") as f:
        f.write("T,hidden,batch,method,median_ms,ratio_to_bp\n")
        for r in rows:
            f.write(f"{r['T']},{r['hidden']},{r['batch']},{r['method']},"
                    f"{r['median_ms']:.4f},{r['ratio_to_bp']:.4f}\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
