"""The analysis command lines: `tpri-collect DIR` and `tpri-plot KIND DIR`.

    tpri-collect outputs/figures/heatmap_smoke            # -> results.csv there
    tpri-plot convergence outputs/figures/convergence_smoke --where seed=0
    tpri-plot report outputs/figures                      # -> outputs/figures/index.html

Every figure is computed before anything is written; a runs dir holding several tasks gives one
figure per task, named after it. Bad input gets one line on stderr and exit code 2 (a wrong
argument) or 1 (nothing usable to plot), and nothing is written.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from tpri.analysis.collect import (
    METRICS,
    DataError,
    UsageError,
    drop_without_metrics,
    family,
    load,
    read_gradients,
    select,
    swept_keys,
    write_results,
)
from tpri.analysis.figures import curves, findings, grids, registry, scaling
from tpri.analysis.figures.report import findings_markdown, sidecar, write_index
from tpri.analysis.figures.style import header_text, save, value_text
from tpri.analysis.figures.tasks import split_tasks, with_task
from tpri.analysis.figures.tuning import choices_table
from tpri.cli import Parser
from tpri.io import save_text

KINDS = list(registry.KINDS)


@dataclass
class Output:
    """One figure to write: its file name, the figure, the runs behind it, extra csv tables."""

    name: str
    fig: object
    jobs: pd.DataFrame | None
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    printed: list[str] = field(default_factory=list)
    findings: list[str] = field(default_factory=list)
    chosen: pd.DataFrame | None = None  # each compared method's chosen setting (NAME_chosen.csv)
    drawn: pd.DataFrame | None = None  # the runs drawn, when fewer than `jobs`
    note: str = ""  # what the figure's lines and bands mean (the caption's last sentence)


# ----------------------------------------------------------------------------- arguments


def _out_dir(value: str) -> Path:
    """An --out value: a non-empty path."""
    if not value.strip():
        raise argparse.ArgumentTypeError("expected a dir, got an empty path")
    return Path(value)


def _results_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("results", type=Path, help="dir of runs (searched recursively) or results.csv")
    p.add_argument("--out", type=_out_dir, default=None, help="output dir (default: the runs dir)")
    p.add_argument(
        "--where",
        nargs="*",
        default=[],
        metavar="KEY=VALUE",
        help="keep only the runs matching, e.g. dataset.name=adding model.hidden=100",
    )


def _average_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--average-over",
        nargs="+",
        default=[],
        metavar="KEY",
        help="keys allowed to vary among the runs drawn together (averaged; named in the header)",
    )


def build_parser(prog: str) -> Parser:
    parser = Parser(prog=prog, description="Plot the paper's figures from a dir of runs.")
    kinds = parser.add_subparsers(dest="kind", required=True, metavar="KIND", parser_class=Parser)
    p = kinds.add_parser("convergence", help="loss and accuracy against iterations and seconds")
    _results_args(p)
    p.add_argument("--metrics", nargs="+", default=["train_loss", "test_accuracy"])
    p = kinds.add_parser("heatmap", help="a grid of two swept keys, diverged settings marked")
    _results_args(p)
    p.add_argument("--value", choices=["auc", "final"], default="auc")
    p.add_argument("--metric", default="train_loss")
    p.add_argument("--x", default="lr")
    p.add_argument("--y", default="reg")
    _average_arg(p)
    p = kinds.add_parser("winner", help="TP vs BP over sequence length x width")
    _results_args(p)
    p.add_argument("--methods", nargs=2, default=["TP", "BP"], help="two method families")
    p = kinds.add_parser("sensitivity", help="a metric per value of one swept key")
    _results_args(p)
    p.add_argument("--key", default="lr_target", help="the swept key: lr_target, lr, reg")
    p.add_argument("--metric", default="test_accuracy")
    _average_arg(p)
    p = kinds.add_parser("gradients", help="adjoint vs displacement norms, norms of W")
    _results_args(p)
    p.add_argument("--job", nargs="+", default=None, help="job dirs relative to RESULTS")
    p = kinds.add_parser("length_scaling", help="share of seeds solving against T")
    _results_args(p)
    p.add_argument("--threshold", type=float, default=0.99, help="test accuracy that solves")
    p.add_argument("--use", choices=["best", "final"], default="best")
    p = kinds.add_parser("compute", help="time and memory per iteration (benchmark csv)")
    p.add_argument("bench", type=Path, help="csv of scripts/benchmark.py")
    p.add_argument("--out", type=_out_dir, default=None, help="output dir (default: the csv's dir)")
    p.add_argument("--hidden", type=int, default=None, help="width of the panels against T")
    p.add_argument("--length", type=int, default=None, help="T of the panel against the width")
    p = kinds.add_parser("report", help="index.html showing every figure below DIR")
    p.add_argument("dir", type=Path, help="dir searched recursively for figures")
    p.add_argument("--out", type=Path, default=None, help="html path (default: DIR/index.html)")
    p.add_argument("--markdown", action="store_true", help="also print the findings as markdown")
    return parser


def check_out(out: Path | None, flag: str = "--out") -> None:
    """UsageError unless `out` is (or can be made as) a writable dir."""
    if out is None:
        return
    if out.exists() and not out.is_dir():
        raise UsageError(f"{flag} {out}: exists and is not a dir")
    parent = out
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK):
        raise UsageError(f"{flag} {out}: cannot create a dir there ({parent} is not a writable dir)")


def _need_column(df: pd.DataFrame, flag: str, key: str) -> None:
    if key not in df:
        raise UsageError(f"{flag} {key}: no such column; swept keys: {', '.join(swept_keys(df)) or 'none'}")


def _need_metric(df: pd.DataFrame, flag: str, metric: str) -> None:
    have = [m for m in df.columns if (m in METRICS[2:] or m.startswith("cos_")) and df[m].notna().any()]
    if metric not in have:
        raise UsageError(f"{flag} {metric}: not a metric of these runs; metrics: {', '.join(have)}")


# ----------------------------------------------------------------------------- figures


def _runs(args) -> pd.DataFrame:
    return with_task(drop_without_metrics(select(load(args.results), args.where), args.results))


def _per_task(df: pd.DataFrame, kind: str, length_is_axis: bool = False):
    """(file name, rows) per task: `kind` alone for one task, else `kind_<task>`."""
    tasks = split_tasks(df, length_is_axis)
    if len(tasks) > 1:
        names = ", ".join(slug for slug, _ in tasks)
        warnings.warn(
            f"{kind}: runs of {len(tasks)} tasks, one figure each ({names}); "
            "--where dataset.name=... to keep one",
            stacklevel=2,
        )
        return [(f"{kind}_{slug}", runs) for slug, runs in tasks]
    return [(kind, tasks[0][1])]


def convergence(args) -> list[Output]:
    df = _runs(args)
    for metric in args.metrics:
        _need_metric(df, "--metrics", metric)
    outputs = []
    for name, runs in _per_task(df, "convergence"):
        drawn, choices = curves.tuned(runs, by=["method"])
        outputs.append(
            Output(
                name,
                curves.plot_convergence(runs, args.metrics),
                runs,
                findings=findings.convergence(runs, args.metrics),
                chosen=choices_table(choices),
                drawn=drawn,
                note=curves.band_note(drawn, ["method"]) + ".",
            )
        )
    return outputs


def heatmap(args) -> list[Output]:
    if args.x == args.y:
        raise UsageError(f"--x {args.x} --y {args.y}: the two axes must be different keys")
    df = _runs(args)
    _need_column(df, "--x", args.x)
    _need_column(df, "--y", args.y)
    _need_metric(df, "--metric", args.metric)
    outputs = []
    for name, runs in _per_task(df, "heatmap"):
        fig, diverged = grids.plot_heatmap(runs, args.x, args.y, args.metric, args.value, args.average_over)
        printed = [
            f"diverged: {m} {args.x}={value_text(x)} {args.y}={value_text(y)}"
            for m, x, y in sorted(diverged, key=str)
        ]
        notes = findings.heatmap(runs, args.x, args.y, args.metric, args.value)
        outputs.append(Output(name, fig, runs, printed=printed, findings=notes))
    return outputs


def winner(args) -> list[Output]:
    if args.methods[0] == args.methods[1]:
        raise UsageError(f"--methods {' '.join(args.methods)}: expected two different method families")
    df = _runs(args)
    families = sorted(family(df).unique())
    for method in args.methods:
        if method not in families:
            raise UsageError(f"--methods {method}: no runs of that family; families: {', '.join(families)}")
    outputs = []
    for name, runs in _per_task(df, "winner", length_is_axis=True):
        fig, table = grids.plot_winner(runs, tuple(args.methods))
        notes = findings.winner(table, args.methods)
        printed = [table.to_string(index=False)]
        chosen = table[
            ["T", "model.hidden", *[f"{m}_{c}" for m in args.methods for c in ("chosen", "at_edge")]]
        ]
        outputs.append(
            Output(name, fig, runs, tables={name: table}, printed=printed, findings=notes, chosen=chosen)
        )
    return outputs


def sensitivity(args) -> list[Output]:
    df = _runs(args)
    _need_column(df, "--key", args.key)
    _need_metric(df, "--metric", args.metric)
    return [
        Output(
            name,
            curves.plot_sensitivity(runs, args.key, args.metric, args.average_over),
            runs,
            findings=findings.sensitivity(runs, args.key, args.metric),
            note=curves.band_note(runs, ["method", args.key]) + ".",
        )
        for name, runs in _per_task(df, f"sensitivity_{args.key}")
    ]


def gradients(args) -> list[Output]:
    df = _runs(args)
    root = args.results.parent if args.results.is_file() else args.results
    if args.job:
        grads = read_gradients(df, root, args.job)  # checks the names
        df = df[df["job_dir"].isin(grads["job_dir"])]
    outputs = []
    for name, runs in _per_task(df, "gradients"):
        grads = read_gradients(runs, root, [j for j in args.job or [] if j in set(runs["job_dir"])] or None)
        logged = runs[runs["job_dir"].isin(grads["job_dir"])]
        fig = curves.plot_gradients(grads, logged)
        notes = findings.gradients(grads, logged)
        chosen = choices_table(curves.tuned(logged, by=["method"])[1])
        outputs.append(Output(name, fig, logged, findings=notes, chosen=chosen))
    return outputs


def length_scaling(args) -> list[Output]:
    if not 0 < args.threshold <= 1:
        raise UsageError(f"--threshold {args.threshold:g}: expected a test accuracy in (0, 1]")
    df = _runs(args)
    outputs = []
    for name, runs in _per_task(df, "length_scaling", length_is_axis=True):
        fig, table = scaling.plot_length_scaling(runs, args.threshold, args.use)
        printed = [table.to_string(index=False)]
        notes = findings.length_scaling(table)
        chosen = table[["method", "T", "chosen", "at_edge", "diverged_other_settings"]]
        outputs.append(Output(name, fig, runs, printed=printed, findings=notes, chosen=chosen))
    return outputs


def compute(args) -> list[Output]:
    path = args.bench
    if not path.exists():
        raise UsageError(f"{path}: no such file (expected the csv of scripts/benchmark.py)")
    if not path.is_file():
        raise UsageError(f"{path}: not a file (expected the csv of scripts/benchmark.py)")
    try:
        bench = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: not a readable csv ({str(e).splitlines()[0]})") from e
    bench = scaling.check_bench(bench, str(path))
    fig = scaling.plot_compute(bench, args.hidden, args.length)
    return [Output("compute", fig, None, findings=findings.compute(bench))]


PLOTS = {
    "convergence": convergence,
    "heatmap": heatmap,
    "winner": winner,
    "sensitivity": sensitivity,
    "gradients": gradients,
    "length_scaling": length_scaling,
    "compute": compute,
}


def _write(outputs: list[Output], kind: str, out_dir: Path, command: str) -> list[Path]:
    """Save every figure (png, pdf, sidecar json) and table (csv); returns the paths."""
    written = []
    for output in outputs:
        png, pdf = save(output.fig, out_dir, output.name)
        chosen = None if output.chosen is None else output.chosen.to_dict("records")
        header = header_text(output.fig)
        side = sidecar(
            png, kind, command, header, output.jobs, output.findings, chosen, output.drawn, output.note
        )
        written += [png, pdf, side]
        if output.chosen is not None:
            save_text(output.chosen.to_csv(index=False), out_dir / f"{output.name}_chosen.csv")
            written.append(out_dir / f"{output.name}_chosen.csv")
        for name, table in output.tables.items():
            save_text(table.to_csv(index=False), out_dir / f"{name}.csv")
            written.append(out_dir / f"{name}.csv")
    return written


# ----------------------------------------------------------------------------- entry points


def _run(action, prog: str) -> int:
    """Run `action()`, printing warnings and errors as lines; the exit code."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            code = action() or 0
        except UsageError as e:
            code, message = 2, str(e)
        except DataError as e:
            code, message = 1, str(e)
        except OSError as e:  # a read-only (archived) dir, a full disk: earlier files stay whole
            code, message = 1, cannot_write(e)
    for warning in caught:
        if issubclass(warning.category, UserWarning):
            print(f"{prog}: warning: {warning.message}", file=sys.stderr)
    if code:
        print(f"{prog}: error: {message}", file=sys.stderr)
    return code


def cannot_write(err: OSError) -> str:
    """One line for a write that failed: where, why, and what to do."""
    where = f"{err.filename}: " if err.filename else ""
    return f"{where}cannot write here ({err.strerror or err}); use --out to write elsewhere"


def plot_main(argv: list[str] | None = None, prog: str = "tpri-plot", kind: str | None = None) -> int:
    """`tpri-plot KIND ...` (or, with `kind`, a `scripts/plot_KIND.py` wrapper); exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = build_parser(prog).parse_args([kind, *argv] if kind else argv)
    except SystemExit as e:
        return int(e.code or 0)
    command = shlex.join([*prog.split(), *argv])

    def action():
        if args.kind == "report":
            if not args.dir.is_dir():
                raise UsageError(f"{args.dir}: not a dir (expected a dir of figures)")
            if args.out is not None and (args.out.is_dir() or not args.out.parent.is_dir()):
                raise UsageError(f"--out {args.out}: expected an html path in an existing dir")
            print(write_index(args.dir, args.out))
            if args.markdown:
                print(findings_markdown(args.dir))
            return 0
        check_out(args.out)
        outputs = PLOTS[args.kind](args)
        source = args.bench if args.kind == "compute" else args.results
        out_dir = args.out or (source.parent if source.is_file() else source)
        for output in outputs:
            for line in output.printed:
                print(line)
        for path in _write(outputs, args.kind, out_dir, command):
            print(path)
        return 0

    return _run(action, f"{prog} {args.kind}" if not kind else prog)


def collect_main(argv: list[str] | None = None, prog: str = "tpri-collect") -> int:
    """`tpri-collect DIR [--out CSV]`: the runs below DIR as results.csv; exit code."""
    parser = Parser(prog=prog, description="Collect the runs below a dir into results.csv.")
    parser.add_argument("root", type=Path, help="dir searched recursively for job dirs")
    parser.add_argument("--out", type=Path, default=None, help="csv path (default: ROOT/results.csv)")
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:
        return int(e.code or 0)

    def action():
        out = write_results(args.root, args.out)
        df = pd.read_csv(out)
        jobs = df.drop_duplicates("job_dir")
        counts = ", ".join(f"{n} {status}" for status, n in jobs["status"].value_counts().items())
        print(f"{len(jobs)} jobs ({counts}), {len(df)} rows -> {out}")

    return _run(action, prog)
