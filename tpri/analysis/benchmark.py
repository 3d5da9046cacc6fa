"""Cost of one training iteration (forward + direction + optimizer step) of BP, TP(graph),
TP(local) and a plain `nn.RNN` loop on the same temporal-order batches: time and peak memory.

    python scripts/benchmark.py                       # the grid T x hidden, batch 20, 1 thread
    python scripts/benchmark.py --T 120 --hidden 100  # one cell
    python scripts/benchmark.py --T 784 --hidden 256 --batch 128 512 --no-time   # memory only
    python scripts/benchmark.py --winner              # adds the paper's corner T=784, d=512, B=512

Time: the methods take turns iteration by iteration in one process, so machine noise hits them
alike; the median over `--iters` iterations is reported.
Memory: one fresh subprocess per (method, cell) runs `--memory-iters` iterations and reports the
peak memory above its baseline (the model, the optimizer and the batches already built): on the
CPU the peak resident set size (VmHWM, reset through /proc/self/clear_refs; ru_maxrss where that
is unavailable), on CUDA `torch.cuda.max_memory_allocated`.

Writes a long CSV, one row per (T, hidden, batch, method), to --out
(default outputs/benchmark/benchmark.csv).
"""

from __future__ import annotations

import argparse
import csv
import io as stdio
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

import tpri
from tpri.cli import Parser
from tpri.io import save_text
from tpri.run.job import denormals_flushed

METHODS = ("plain_rnn", "bp", "tp_graph", "tp_local")
TASK = tpri.data.TemporalOrderTask  # what every cell trains on: the temporal order task, length T
WINNER = (784, 512, 512)  # the paper's largest cell of the winner sweep: T, d, batch
COLUMNS = (
    "T",
    "hidden",
    "batch",
    "method",
    "median_ms",
    "ratio_to_bp",
    "peak_mib",
    "mem_ratio_to_bp",
    "device",
    "threads",
)


# --- one training iteration per method -------------------------------------------------
class PlainRNN(nn.Module):
    """The reference loop BP is compared with: nn.RNN, a linear readout of h_n, cross-entropy."""

    def __init__(self, input_size: int, hidden: int, output_size: int):
        super().__init__()
        self.rnn = nn.RNN(input_size, hidden, batch_first=True)
        self.readout = nn.Linear(hidden, output_size)

    def forward(self, x):
        _, h_n = self.rnn(x)  # h_n (1, B, d)
        return self.readout(h_n[-1])


@dataclass
class Runner:
    """One method's model, optimizer and direction; `step` is one training iteration."""

    name: str
    model: nn.Module
    optimizer: torch.optim.Optimizer
    direction: object | None  # None: the plain loop (loss.backward())

    def step(self, x, y, loss_fn) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        if self.direction is None:
            F.cross_entropy(self.model(x), y).backward()
        else:
            self.direction.backward(self.model, x, y, loss_fn)
        self.optimizer.step()


def make_runner(name: str, task, hidden: int, device: torch.device) -> Runner:
    torch.manual_seed(0)
    if name == "plain_rnn":
        model, direction = PlainRNN(task.input_size, hidden, task.output_size), None
    else:
        model = tpri.RNN(task.input_size, hidden, task.output_size)
        direction = {
            "bp": lambda: tpri.Backprop(),
            "tp_graph": lambda: tpri.TargetProp(lr_target=1e-2, reg=1.0, update="graph"),
            "tp_local": lambda: tpri.TargetProp(lr_target=1e-2, reg=1.0, update="local"),
        }[name]()
    model = model.to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9, nesterov=True)
    return Runner(name, model, optimizer, direction)


def make_batches(T: int, batch: int, count: int, device: torch.device):
    task = TASK(length=T)
    gen = torch.Generator().manual_seed(0)
    return task, [tuple(t.to(device) for t in task.sample(batch, gen)) for _ in range(count)]


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# --- time: interleaved in one process -----------------------------------------------------
def time_cell(
    T: int, hidden: int, batch: int, iters: int, warmup: int, device: torch.device, methods=METHODS
) -> dict[str, float]:
    """Median milliseconds per iteration of each method on the same batches, the methods
    taking turns iteration by iteration."""
    task, batches = make_batches(T, batch, 8, device)
    runners = [make_runner(name, task, hidden, device) for name in methods]
    times = {name: [] for name in methods}
    for i in range(warmup + iters):
        x, y = batches[i % len(batches)]
        for runner in runners:
            synchronize(device)
            start = time.perf_counter()
            runner.step(x, y, task.loss)
            synchronize(device)
            times[runner.name].append(time.perf_counter() - start)
    return {name: 1000 * statistics.median(t[warmup:]) for name, t in times.items()}


# --- memory: one fresh process per method and cell -----------------------------------------
def _rss_mib(field: str) -> float | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024  # kB
    except OSError:
        return None
    return None


def _reset_peak_rss() -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0); False where that is unavailable."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def probe_memory(method: str, T: int, hidden: int, batch: int, iters: int, device: torch.device) -> float:
    """Peak MiB above the baseline while `method` runs `iters` iterations (in this process:
    call it in a fresh one, see `measure_memory`)."""
    task, batches = make_batches(T, batch, 2, device)
    runner = make_runner(method, task, hidden, device)
    if device.type == "cuda":
        synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
    elif _reset_peak_rss():
        base = _rss_mib("VmRSS")
    else:
        base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    for i in range(iters):
        x, y = batches[i % len(batches)]
        runner.step(x, y, task.loss)
    if device.type == "cuda":
        synchronize(device)
        return (torch.cuda.max_memory_allocated(device) - base) / 2**20
    peak = _rss_mib("VmHWM") if base is not None else None
    if peak is None:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return peak - base


def measure_memory(
    method: str, T: int, hidden: int, batch: int, iters: int, device: torch.device, threads: int
) -> float:
    """`probe_memory` in a fresh Python process, so no allocator state carries over."""
    package_root = str(Path(tpri.__file__).resolve().parents[1])
    env = dict(
        os.environ,
        PYTHONPATH=os.pathsep.join([package_root] + [p for p in [os.environ.get("PYTHONPATH")] if p]),
    )
    args = [
        sys.executable,
        "-m",
        "tpri.analysis.benchmark",
        "--probe",
        method,
        "--T",
        str(T),
        "--hidden",
        str(hidden),
        "--batch",
        str(batch),
        "--memory-iters",
        str(iters),
        "--device",
        str(device),
        "--threads",
        str(threads),
    ]
    done = subprocess.run(args, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise RuntimeError(
            f"memory probe {method} T={T} hidden={hidden} batch={batch} failed:\n"
            f"{done.stderr.strip()[-2000:]}"
        )
    return json.loads(done.stdout.strip().splitlines()[-1])["peak_mib"]


# --- the grid ------------------------------------------------------------------------------
def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}")
    return value


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}")
    return value


def _threads(text: str) -> int:
    value, cpus = _positive(text), os.cpu_count() or 1
    if value > cpus:
        raise argparse.ArgumentTypeError(f"expected an integer in [1, {cpus}] (the CPUs here), got {text!r}")
    return value


def _device(text: str) -> torch.device:
    if text == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if text.startswith("cuda") and not torch.cuda.is_available():
        raise argparse.ArgumentTypeError(f"{text!r}: CUDA is not available on this machine")
    if not (text == "cpu" or text.startswith("cuda")):
        raise argparse.ArgumentTypeError(f"expected cpu, cuda[:i] or auto, got {text!r}")
    return torch.device(text)


def parse_args(argv=None) -> argparse.Namespace:
    parser = Parser(description=" ".join(__doc__.split("\n\n")[0].split()))
    parser.add_argument("--T", type=_positive, nargs="+", default=[30, 60, 120, 240])
    parser.add_argument("--hidden", type=_positive, nargs="+", default=[32, 100, 256])
    parser.add_argument("--batch", type=_positive, nargs="+", default=[20])
    parser.add_argument("--iters", type=_positive, default=100, help="timed iterations (median)")
    parser.add_argument("--warmup", type=_count, default=10)
    parser.add_argument("--memory-iters", type=_positive, default=3, help="iterations per memory probe")
    parser.add_argument("--threads", type=_threads, default=1)
    parser.add_argument(
        "--device", type=_device, default=torch.device("cpu"), help="cpu (default), cuda[:i] or auto"
    )
    parser.add_argument(
        "--winner", action="store_true", help=f"add the paper's winner corner T, d, batch = {WINNER}"
    )
    parser.add_argument("--no-time", action="store_true", help="memory only")
    parser.add_argument("--no-memory", action="store_true", help="time only")
    parser.add_argument("--out", type=Path, default=Path("outputs/benchmark/benchmark.csv"))
    parser.add_argument("--probe", choices=METHODS, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def cells(args) -> list[tuple[int, int, int]]:
    grid = [(T, d, b) for T in args.T for d in args.hidden for b in args.batch]
    return grid + [WINNER] * (args.winner and WINNER not in grid)


def run_cell(T: int, hidden: int, batch: int, args) -> list[dict]:
    ms = {} if args.no_time else time_cell(T, hidden, batch, args.iters, args.warmup, args.device)
    mib = (
        {}
        if args.no_memory
        else {
            m: measure_memory(m, T, hidden, batch, args.memory_iters, args.device, args.threads)
            for m in METHODS
        }
    )
    rows = []
    for m in METHODS:
        row = dict(
            T=T,
            hidden=hidden,
            batch=batch,
            method=m,
            device=args.device.type,
            threads=args.threads,
            median_ms=ms.get(m),
            peak_mib=mib.get(m),
        )
        row["ratio_to_bp"] = ms[m] / ms["bp"] if ms else None
        row["mem_ratio_to_bp"] = mib[m] / mib["bp"] if mib and mib["bp"] > 0 else None
        rows.append(row)
    return rows


def print_header() -> None:
    print(
        f"{'T':>5} {'d':>5} {'B':>5} | {'plain ms':>8} {'BP ms':>8} {'TPg ms':>8} {'TPl ms':>8} "
        f"{'BP/pl':>6} {'TPg/BP':>6} {'TPl/BP':>6} | {'plain MiB':>9} {'BP MiB':>8} "
        f"{'TPg MiB':>8} {'TPl MiB':>8} {'TPg/BP':>6} {'TPl/BP':>6}",
        flush=True,
    )


def print_cell(rows: list[dict]) -> None:
    by = {r["method"]: r for r in rows}

    def fmt(value, width, digits=2):
        return f"{value:{width}.{digits}f}" if value is not None else f"{'-':>{width}}"

    ms = {m: by[m]["median_ms"] for m in METHODS}
    mib = {m: by[m]["peak_mib"] for m in METHODS}
    bp_plain = ms["bp"] / ms["plain_rnn"] if ms["bp"] is not None else None
    r = rows[0]
    print(
        f"{r['T']:>5} {r['hidden']:>5} {r['batch']:>5} | "
        + " ".join(fmt(ms[m], 8) for m in METHODS)
        + " "
        + " ".join(
            fmt(v, 6) for v in (bp_plain, by["tp_graph"]["ratio_to_bp"], by["tp_local"]["ratio_to_bp"])
        )
        + " | "
        + fmt(mib["plain_rnn"], 9, 0)
        + " "
        + " ".join(fmt(mib[m], 8, 0) for m in METHODS[1:])
        + " "
        + " ".join(fmt(by[m]["mem_ratio_to_bp"], 6) for m in ("tp_graph", "tp_local")),
        flush=True,
    )


def write_csv(rows: list[dict], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = stdio.StringIO(newline="")
    writer = csv.DictWriter(text, fieldnames=COLUMNS)
    writer.writeheader()
    for row in rows:
        writer.writerow(
            {k: (f"{v:.4f}" if isinstance(v, float) else ("" if v is None else v)) for k, v in row.items()}
        )
    save_text(text.getvalue(), path)  # atomic: a failed write keeps the previous table


def main(argv=None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    with denormals_flushed():  # as in a job: every method alike
        return measure(args)


def measure(args) -> int:
    """The probe (a child process) or the grid, as the parsed arguments ask; the exit code."""
    if args.probe:  # the child process of measure_memory
        peak = probe_memory(
            args.probe, args.T[0], args.hidden[0], args.batch[0], args.memory_iters, args.device
        )
        print(json.dumps({"peak_mib": peak}))
        return 0
    if args.no_time and args.no_memory:
        print("benchmark: --no-time and --no-memory leave nothing to measure", file=sys.stderr)
        return 2
    if args.out.is_dir() or not _writable(args.out.parent):
        print(f"benchmark: --out {args.out}: cannot write a file there", file=sys.stderr)
        return 2
    too_big = oversized_cells(cells(args))
    if too_big:
        print(f"benchmark: {too_big}", file=sys.stderr)
        return 2
    rows = []
    print_header()
    try:
        for T, hidden, batch in cells(args):
            cell_rows = run_cell(T, hidden, batch, args)
            print_cell(cell_rows)
            rows += cell_rows
    except RuntimeError as err:  # a memory probe failed (its stderr is in the message)
        print(f"benchmark: {err}", file=sys.stderr)
        return 1
    write_csv(rows, args.out)
    print(f"wrote {args.out}")
    return 0


def oversized_cells(grid, available: int | None = None) -> str | None:
    """One line naming the first cell whose iteration of the largest method (every method of the
    benchmark runs: TP's and BP's estimates, the larger) would not fit in the available memory,
    by the same estimate `train.py` checks jobs with; else None."""
    from tpri.configs.build import DEFAULT_MODEL
    from tpri.configs.resources import estimate_memory, peak
    from tpri.configs.rules import available_memory

    limit = available_memory() if available is None else available
    for T, hidden, batch in grid:
        cfg = {
            "dataset": {
                "name": TASK.name,
                "length": T,
                "bits": 1,
                "variable_length": False,
                "test_size": 0,
                "eval_size": 0,
            },
            "model": {"name": DEFAULT_MODEL, "hidden": hidden},
            "batch_size": batch,
        }
        need = max(peak(estimate_memory({**cfg, "optimizer": {"name": name}})) for name in ("tp", "sgd"))
        if need > limit:
            return (
                f"the cell T={T}, hidden={hidden}, batch={batch} needs about {need / 2**30:.1f} GiB, "
                f"more than the {limit / 2**30:.1f} GiB available; shrink --batch, --hidden or --T"
            )
    return None


def _writable(folder: Path) -> bool:
    """Whether `folder` exists (or can be made) and accepts files."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return False
    return os.access(folder, os.W_OK)


if __name__ == "__main__":
    sys.exit(main())
