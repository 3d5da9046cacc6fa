"""What each figure kind makes from its parsed command-line options (named by its entry in
`registry.KINDS`; `args.kind` is the kind, which names its files): the figures of its runs, one
per task, each with the runs behind it, the tables and lines to print, and the facts its
findings function reads.

Each function checks its options against the runs (a UsageError names the flag) before drawing.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

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
)
from tpri.analysis.figures import curves, grids, scaling
from tpri.analysis.figures.style import value_text
from tpri.analysis.figures.tasks import split_tasks, with_task
from tpri.analysis.figures.tuning import choices_table


@dataclass
class Output:
    """One figure to write: its file name, the figure, the runs behind it, extra csv tables."""

    name: str
    fig: object
    jobs: pd.DataFrame | None
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    printed: list[str] = field(default_factory=list)
    facts: tuple = ()  # the arguments of the kind's findings function
    chosen: pd.DataFrame | None = None  # each compared method's chosen setting (NAME_chosen.csv)
    drawn: pd.DataFrame | None = None  # the runs drawn, when fewer than `jobs`
    note: str = ""  # what the figure's lines and bands mean (the caption's last sentence)


def need_column(df: pd.DataFrame, flag: str, key: str) -> None:
    if key not in df:
        raise UsageError(f"{flag} {key}: no such column; swept keys: {', '.join(swept_keys(df)) or 'none'}")


def need_metric(df: pd.DataFrame, flag: str, metric: str) -> None:
    have = [m for m in df.columns if (m in METRICS[2:] or m.startswith("cos_")) and df[m].notna().any()]
    if metric not in have:
        raise UsageError(f"{flag} {metric}: not a metric of these runs; metrics: {', '.join(have)}")


def runs_of(args) -> pd.DataFrame:
    return with_task(drop_without_metrics(select(load(args.results), args.where), args.results))


def per_task(df: pd.DataFrame, kind: str, length_is_axis: bool = False):
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
    df = runs_of(args)
    for metric in args.metrics:
        need_metric(df, "--metrics", metric)
    outputs = []
    for name, runs in per_task(df, args.kind):
        drawn, choices = curves.tuned(runs, by=["method"])
        outputs.append(
            Output(
                name,
                curves.plot_convergence(runs, args.metrics),
                runs,
                facts=(runs, args.metrics),
                chosen=choices_table(choices),
                drawn=drawn,
                note=curves.band_note(drawn, ["method"]) + ".",
            )
        )
    return outputs


def heatmap(args) -> list[Output]:
    if args.x == args.y:
        raise UsageError(f"--x {args.x} --y {args.y}: the two axes must be different keys")
    df = runs_of(args)
    need_column(df, "--x", args.x)
    need_column(df, "--y", args.y)
    need_metric(df, "--metric", args.metric)
    outputs = []
    for name, runs in per_task(df, args.kind):
        fig, diverged = grids.plot_heatmap(runs, args.x, args.y, args.metric, args.value, args.average_over)
        printed = [
            f"diverged: {m} {args.x}={value_text(x)} {args.y}={value_text(y)}"
            for m, x, y in sorted(diverged, key=str)
        ]
        facts = (runs, args.x, args.y, args.metric, args.value)
        outputs.append(Output(name, fig, runs, printed=printed, facts=facts))
    return outputs


def winner(args) -> list[Output]:
    if args.methods[0] == args.methods[1]:
        raise UsageError(f"--methods {' '.join(args.methods)}: expected two different method families")
    df = runs_of(args)
    families = sorted(family(df).unique())
    for method in args.methods:
        if method not in families:
            raise UsageError(f"--methods {method}: no runs of that family; families: {', '.join(families)}")
    outputs = []
    for name, runs in per_task(df, args.kind, length_is_axis=True):
        fig, table = grids.plot_winner(runs, tuple(args.methods))
        printed = [table.to_string(index=False)]
        chosen = table[
            ["T", "model.hidden", *[f"{m}_{c}" for m in args.methods for c in ("chosen", "at_edge")]]
        ]
        facts = (table, args.methods)
        outputs.append(
            Output(name, fig, runs, tables={name: table}, printed=printed, facts=facts, chosen=chosen)
        )
    return outputs


def sensitivity(args) -> list[Output]:
    df = runs_of(args)
    need_column(df, "--key", args.key)
    need_metric(df, "--metric", args.metric)
    return [
        Output(
            name,
            curves.plot_sensitivity(runs, args.key, args.metric, args.average_over),
            runs,
            facts=(runs, args.key, args.metric),
            note=curves.band_note(runs, ["method", args.key]) + ".",
        )
        for name, runs in per_task(df, f"{args.kind}_{args.key}")
    ]


def gradients(args) -> list[Output]:
    df = runs_of(args)
    root = args.results.parent if args.results.is_file() else args.results
    if args.job:
        grads = read_gradients(df, root, args.job)  # checks the names
        df = df[df["job_dir"].isin(grads["job_dir"])]
    outputs = []
    for name, runs in per_task(df, args.kind):
        grads = read_gradients(runs, root, [j for j in args.job or [] if j in set(runs["job_dir"])] or None)
        logged = runs[runs["job_dir"].isin(grads["job_dir"])]
        fig = curves.plot_gradients(grads, logged)
        chosen = choices_table(curves.tuned(logged, by=["method"])[1])
        outputs.append(Output(name, fig, logged, facts=(grads, logged), chosen=chosen))
    return outputs


def length_scaling(args) -> list[Output]:
    if not 0 < args.threshold <= 1:
        raise UsageError(f"--threshold {args.threshold:g}: expected a test accuracy in (0, 1]")
    df = runs_of(args)
    outputs = []
    for name, runs in per_task(df, args.kind, length_is_axis=True):
        fig, table = scaling.plot_length_scaling(runs, args.threshold, args.use)
        printed = [table.to_string(index=False)]
        chosen = table[["method", "T", "chosen", "at_edge", "diverged_other_settings"]]
        outputs.append(Output(name, fig, runs, printed=printed, facts=(table,), chosen=chosen))
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
    return [Output(args.kind, fig, None, facts=(bench,))]
