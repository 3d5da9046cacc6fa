"""Check tpri on a CUDA device: directions equal the CPU ones, then time and memory per iteration.

    python scripts/gpu_check.py            # (a) + (b), ~3-8 minutes on one H100
    python scripts/gpu_check.py --quick    # (a) + a 2-cell table, under a minute

(a) In float64, the direction (every parameter's `.grad`) and TP's displacements on CUDA equal
    the CPU ones to a relative error < 1e-10, for BP and for TP with every target rule and
    update mode on the tanh RNN, the linearized rule on the identity RNN, the text RNN
    (per-step targets) and the GRU. TP is called three times on the device: the first call
    sweeps eagerly, the second records the CUDA graph of the sweep, the third replays it; all
    three are checked. Training batches drawn with a CUDA generator must come back on the device.
(b) A table of ms per iteration (median, methods interleaved) and peak device memory above the
    baseline (torch.cuda.max_memory_allocated over 3 iterations) for the plain nn.RNN loop, BP,
    TP(graph) and TP(local) at T in {120, 784}, d in {100, 256, 512}, batch in {20, 512},
    float32 (the table is also written to --out as CSV).

Exit status: 0 when every check passes, 1 on a mismatch or a failed cell, 0 with one line
"gpu_check: no CUDA device, nothing checked" on a machine without CUDA (3 with --require-cuda).
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's tpri first

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import tpri  # noqa: E402
from tpri.algorithm.tp import TARGETS, UPDATES  # noqa: E402
from tpri.analysis import benchmark  # noqa: E402

TOLERANCE = 1e-10
GRID = dict(T=(120, 784), hidden=(100, 256, 512), batch=(20, 512))
QUICK_GRID = dict(T=(120,), hidden=(100,), batch=(20, 512))


# --- (a) CUDA directions equal the CPU ones ---------------------------------------------------
def lm_loss(pred, target):
    return F.cross_entropy(pred.flatten(0, 1), target.flatten())


def problem(kind: str, activation: str = "tanh"):
    """A float64 model (perturbed, so every term is exercised), a batch and its loss."""
    torch.manual_seed(0)
    B, T, n, d, classes = 6, 12, 3, 8, 4
    if kind == "text":
        model = tpri.TextRNN(11, d, 11, embedding_dim=5).double()
        x, y, loss = torch.randint(11, (B, T)), torch.randint(11, (B, T)), lm_loss
    else:
        model = (
            tpri.GRU(n, d, classes) if kind == "gru" else tpri.RNN(n, d, classes, activation=activation)
        ).double()
        x, y, loss = (
            0.5 * torch.randn(B, T, n, dtype=torch.float64),
            torch.randint(classes, (B,)),
            F.cross_entropy,
        )
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(0.1 * torch.randn_like(p))
    return model, x, y, loss


def run_direction(method, model, x, y, loss) -> tuple[dict, torch.Tensor | None]:
    model.zero_grad(set_to_none=True)
    method.backward(model, x, y, loss)
    grads = {n: p.grad.detach().cpu().clone() for n, p in model.named_parameters() if p.grad is not None}
    E = getattr(method, "displacements", None)
    return grads, None if E is None else E.detach().cpu().clone()


def relative_error(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).norm() / b.norm().clamp(min=1e-300)).item()


def check_case(label: str, make_method, kind: str, activation: str, device) -> bool:
    model, x, y, loss = problem(kind, activation)
    ref_grads, ref_E = run_direction(make_method(), model, x, y, loss)
    gpu_model = copy.deepcopy(model).to(device)
    gx, gy = x.to(device), y.to(device)
    method, ok, worst = make_method(), True, 0.0
    for _ in range(3):  # eager, record, replay
        grads, E = run_direction(method, gpu_model, gx, gy, loss)
        errors = [relative_error(grads[n], ref_grads[n]) for n in ref_grads]
        if ref_E is not None:
            errors.append(relative_error(E, ref_E))
        if set(grads) != set(ref_grads):
            errors.append(float("inf"))
        worst = max(worst, *errors)
        ok = ok and max(errors) < TOLERANCE
    print(f"  {label:<34} max relative error {worst:.2e}  {'ok' if ok else 'MISMATCH'}", flush=True)
    return ok


def check_directions(device) -> bool:
    print(f"(a) directions on {device} vs the CPU, float64, tolerance {TOLERANCE:g}")
    cases = [("bp rnn", tpri.Backprop, "rnn", "tanh"), ("bp gru", tpri.Backprop, "gru", "tanh")]
    for targets in TARGETS:
        for update in UPDATES:
            cases.append(
                (
                    f"tp rnn {targets} {update}",
                    lambda t=targets, u=update: tpri.TargetProp(0.3, 0.5, t, u),
                    "rnn",
                    "tanh",
                )
            )
    for kind, activation in (("rnn", "identity"), ("text", "tanh"), ("gru", "tanh")):
        for update in UPDATES:
            cases.append(
                (
                    f"tp {kind} {activation} linearized {update}",
                    lambda u=update: tpri.TargetProp(0.3, 0.5, "linearized", u),
                    kind,
                    activation,
                )
            )
    results = [check_case(label, make, kind, act, device) for label, make, kind, act in cases]
    return all(results) and check_sampling(device)


def check_sampling(device) -> bool:
    ok = True
    for task in (tpri.data.make_task("temporal_order", length=30), tpri.data.make_task("adding", length=30)):
        x, y = task.sample(16, torch.Generator(device=device).manual_seed(0))
        ok = ok and x.device.type == y.device.type == "cuda" and x.shape == (16, 30, task.input_size)
    print(f"  {'task.sample with a CUDA generator':<34} {'ok' if ok else 'MISMATCH (not on the device)'}")
    return ok


# --- (b) time and memory ----------------------------------------------------------------------
def timing_table(device, grid: dict, iters: int, warmup: int, out: Path) -> bool:
    print(
        f"\n(b) ms per iteration and peak device memory (MiB above baseline), float32, "
        f"{torch.cuda.get_device_name(device)}"
    )
    benchmark.print_header()
    rows, ok = [], True
    for T in grid["T"]:
        for hidden in grid["hidden"]:
            for batch in grid["batch"]:
                try:
                    ms = benchmark.time_cell(T, hidden, batch, iters, warmup, device)
                    mib = {}
                    for m in benchmark.METHODS:
                        torch.cuda.empty_cache()
                        mib[m] = benchmark.probe_memory(m, T, hidden, batch, 3, device)
                except Exception as err:  # report the cell, go on with the others
                    print(f"{T:>5} {hidden:>5} {batch:>5} | failed: {type(err).__name__}: {err}")
                    ok = False
                    continue
                cell = [
                    dict(
                        T=T,
                        hidden=hidden,
                        batch=batch,
                        method=m,
                        device="cuda",
                        threads=0,
                        median_ms=ms[m],
                        ratio_to_bp=ms[m] / ms["bp"],
                        peak_mib=mib[m],
                        mem_ratio_to_bp=mib[m] / mib["bp"] if mib["bp"] > 0 else None,
                    )
                    for m in benchmark.METHODS
                ]
                benchmark.print_cell(cell)
                rows += cell
    benchmark.write_csv(rows, out)
    print(f"wrote {out}")
    return ok


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a 2-cell table instead of 12")
    parser.add_argument("--iters", type=int, default=20, help="timed iterations per cell")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument(
        "--require-cuda", action="store_true", help="exit 3 (not 0) when there is no CUDA device"
    )
    parser.add_argument("--out", type=Path, default=Path("outputs/gpu_check/gpu_check.csv"))
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        print("gpu_check: no CUDA device, nothing checked")
        return 3 if args.require_cuda else 0
    device = torch.device("cuda")
    start = time.perf_counter()
    directions_ok = check_directions(device)
    table_ok = timing_table(device, QUICK_GRID if args.quick else GRID, args.iters, args.warmup, args.out)
    verdict = "all checks passed" if directions_ok and table_ok else "FAILED"
    print(f"gpu_check: {verdict} ({time.perf_counter() - start:.0f} s)")
    return 0 if directions_ok and table_ok else 1


if __name__ == "__main__":
    sys.exit(main())
