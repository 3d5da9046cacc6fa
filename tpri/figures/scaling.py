"""Figures against the size of the problem: share of seeds solving the task against T, and
time and memory per iteration against T and the width (a `scripts/benchmark.py` csv)."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import NullFormatter

from tpri.collect import DataError, UsageError, best_configs, numeric, sequence_length, summarize
from tpri.figures.style import (
    DIVERGED_MARK,
    label,
    log_axis,
    method_style,
    new_figure,
    set_header,
    styled,
    tick_labels,
)
from tpri.figures.tasks import header_lines, refuse_mixed, with_task

BENCH_METHODS = {"bp": "BP", "tp_graph": "TP", "tp_local": "TP (local)", "plain_rnn": "plain RNN"}
BENCH_COLUMNS = ["T", "hidden", "batch", "method", "median_ms"]


def solved_table(df: pd.DataFrame, threshold: float = 0.99, use: str = "best") -> pd.DataFrame:
    """Per method and sequence length T: the share of seeds whose `use` ("best" or "final")
    test accuracy reaches `threshold`, for the configuration with the largest share, with the
    number of seeds and of diverged runs of that configuration."""
    jobs = summarize(df, ["test_accuracy"])
    jobs = jobs.assign(
        T=sequence_length(jobs),
        diverged=jobs["status"].eq("diverged"),
        solved=jobs[f"{use}_test_accuracy"].astype(float) >= threshold,
    )
    best = best_configs(jobs, by=["method", "T"], score="solved", higher=True)
    return (
        best.groupby(["method", "T"])
        .agg(
            share=("solved", "mean"),
            seeds=("solved", "count"),
            diverged=("diverged", "sum"),
        )
        .reset_index()
    )


@styled
def plot_length_scaling(df: pd.DataFrame, threshold: float = 0.99, use: str = "best"):
    """Share of seeds solving the task against the sequence length T, one line per method
    (see `solved_table`); an X marks lengths where runs diverged. One task (T may vary).
    Returns the figure and the table."""
    if df.empty:
        raise DataError("no runs to plot length scaling")
    df = with_task(df) if "task" not in df else df
    refuse_mixed(df, length_is_axis=True)
    table = solved_table(df, threshold, use)
    fig, axes = new_figure(width=5.5)
    ax = axes[0, 0]
    for method, rows in table.groupby("method"):
        style = method_style(method)
        ax.plot(rows["T"], rows["share"], **style.line(), label=method)
        bad = rows[rows["diverged"] > 0]
        if len(bad):
            ax.plot(
                bad["T"],
                bad["share"],
                color=style.color,
                **DIVERGED_MARK,
                label=f"{method}: runs diverged at this T",
            )
    ax.set(
        xlabel=label("T"),
        ylim=(-0.05, 1.05),
        ylabel=f"share of seeds solving\n({use} test accuracy ≥ {threshold:g})",
    )
    ax.set_xticks(sorted(table["T"].unique()))
    ax.legend(fontsize=7)
    jobs = df.drop_duplicates("job_dir")
    set_header(
        fig,
        "Length scaling: share of seeds that solve the task, each method at its best setting per T",
        header_lines(jobs, by=["method", "T"]),
    )
    return fig, table


def check_bench(bench: pd.DataFrame, source: str = "benchmark csv") -> pd.DataFrame:
    """The benchmark table if it has the columns and rows needed; DataError otherwise."""
    missing = [c for c in BENCH_COLUMNS if c not in bench]
    if missing:
        raise DataError(
            f"{source}: no column {', '.join(missing)} (expected the csv of "
            "scripts/benchmark.py: T, hidden, batch, method, median_ms[, peak_mib])"
        )
    if bench.empty:
        raise DataError(f"{source}: header only, no rows")
    numbers = ["T", "hidden", "batch", "median_ms", "ratio_to_bp", "peak_mib", "mem_ratio_to_bp"]
    return numeric(bench, [c for c in numbers if c in bench], source)


def _richest(bench: pd.DataFrame, fixed: str, varying: str):
    """The value of `fixed` with the most distinct values of `varying` (the largest on ties)."""
    counts = bench.groupby(fixed)[varying].nunique()
    return counts[counts == counts.max()].index.max()


def _panel(ax, rows: pd.DataFrame, x: str, y: str, ylabel: str) -> None:
    """`y` (median over duplicate rows) against `x`, one line per method, log-log."""
    for method, runs in rows.groupby("method"):
        name = BENCH_METHODS.get(method, method)
        values = runs.groupby(x)[y].median()
        ax.plot(values.index, values, **method_style(name).line(), label=name)
    ax.set(xscale="log", yscale="log", xlabel=label(x), ylabel=ylabel)
    ticks = sorted(rows[x].unique())
    ax.set_xticks(ticks, tick_labels(ticks), minor=False)
    ax.xaxis.set_minor_formatter(NullFormatter())
    log_axis(ax.yaxis, rows[y])


@styled
def plot_compute(bench: pd.DataFrame, hidden: int | None = None, length: int | None = None) -> Figure:
    """Median milliseconds per training iteration of each method against T at width `hidden`
    and against the width at length `length`, and the peak memory against T when the csv has
    `peak_mib` (log-log; defaults: the value with the most points). One batch size: the most
    frequent one when the csv holds several (with a warning)."""
    bench = check_bench(bench)
    batches = bench["batch"].value_counts()
    batch = batches.index[0]
    if len(batches) > 1:
        warnings.warn(
            f"compute: several batch sizes {sorted(batches.index)}; plotting batch={batch}", stacklevel=2
        )
        bench = bench[bench["batch"] == batch]
    hidden = hidden if hidden is not None else _richest(bench, "hidden", "T")
    length = length if length is not None else _richest(bench, "T", "hidden")
    for key, value in (("hidden", hidden), ("T", length)):
        if not np.isclose(bench[key], value).any():
            flag = "--hidden" if key == "hidden" else "--length"
            raise UsageError(
                f"{flag} {value}: not in the csv; values: "
                f"{', '.join(f'{v:g}' for v in sorted(bench[key].unique()))}"
            )
    memory = "peak_mib" in bench and bench["peak_mib"].notna().any()
    fig, axes = new_figure(1, 3 if memory else 2, width=3.8)
    by_t, by_d = bench[bench["hidden"] == hidden], bench[bench["T"] == length]
    _panel(axes[0, 0], by_t, "T", "median_ms", "time per iteration (ms)")
    axes[0, 0].set_title(f"{label('hidden')} = {hidden:g}")
    _panel(axes[0, 1], by_d, "hidden", "median_ms", "time per iteration (ms)")
    axes[0, 1].set_title(f"{label('T')} = {length:g}")
    lines = [f"batch {batch:g}; median over the timed iterations of each setting"]
    if memory:
        _panel(axes[0, 2], by_t, "T", "peak_mib", "peak memory (MiB)")
        axes[0, 2].set_title(f"{label('hidden')} = {hidden:g}")
    else:
        lines.append("memory panel: no peak_mib column in this csv (older benchmark.py)")
    axes[0, 0].legend(fontsize=7)
    set_header(fig, "Compute: time per training iteration" + (" and peak memory" if memory else ""), lines)
    return fig
