"""Figures against the size of the problem: share of seeds solving the task against T, and
time and memory per iteration against T and the width (a `scripts/benchmark.py` csv)."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import NullFormatter

from tpri.analysis.collect import DataError, UsageError, numeric, sequence_length, summarize
from tpri.analysis.figures.style import (
    DIVERGED_MARK,
    label,
    log_axis,
    method_style,
    new_figure,
    set_header,
    styled,
    tick_labels,
)
from tpri.analysis.figures.tasks import header_lines, refuse_mixed, with_task
from tpri.analysis.figures.tuning import UNTUNED, grid_text, select, tuned_keys

BENCH_METHODS = {"bp": "BP", "tp_graph": "TP", "tp_local": "TP (local)", "plain_rnn": "plain RNN"}
BENCH_COLUMNS = ["T", "hidden", "batch", "method", "median_ms"]


def solved_table(df: pd.DataFrame, threshold: float = 0.99, use: str = "best") -> pd.DataFrame:
    """Per method and sequence length T: the share of seeds whose `use` ("best" or "final")
    test accuracy reaches `threshold`, for the configuration with the largest share (ties: the
    first in the order of the tuned keys), with the number of seeds solving and run, the
    diverged runs of that configuration, its setting (`chosen`, `at_edge`) and the diverged
    runs of the other settings."""
    jobs = summarize(df, ["test_accuracy"])
    jobs = jobs.assign(
        T=sequence_length(jobs),
        diverged=jobs["status"].eq("diverged"),
        solved=jobs[f"{use}_test_accuracy"].astype(float) >= threshold,
    )
    best, choices = select(jobs, by=["method", "T"], score="solved", higher=True)
    table = (
        best.groupby(["method", "T"])
        .agg(
            share=("solved", "mean"),
            solved=("solved", "sum"),
            seeds=("solved", "count"),
            diverged=("diverged", "sum"),
        )
        .reset_index()
    )
    table["solved"] = table["solved"].astype(int)
    picks = {(c.group["method"], c.group["T"]): c for c in choices}
    table["chosen"] = [picks[(m, t)].setting() or UNTUNED for m, t in zip(table["method"], table["T"])]
    table["at_edge"] = [bool(picks[(m, t)].edge) for m, t in zip(table["method"], table["T"])]
    table["diverged_other_settings"] = [
        picks[(m, t)].diverged_other for m, t in zip(table["method"], table["T"])
    ]
    return table


@styled
def plot_length_scaling(df: pd.DataFrame, threshold: float = 0.99, use: str = "best"):
    """Share of seeds solving the task against the sequence length T, one line per method
    (see `solved_table`), each point labelled with the chosen setting ('!' at the edge of its
    grid); an X marks lengths where runs of the chosen setting diverged. One task (T may
    vary). Returns the figure and the table."""
    if df.empty:
        raise DataError("no runs to plot length scaling")
    df = with_task(df) if "task" not in df else df
    refuse_mixed(df, length_is_axis=True)
    table = solved_table(df, threshold, use)
    fig, axes = new_figure(width=5.5)
    ax = axes[0, 0]
    tuned = {}
    for k, (method, rows) in enumerate(table.groupby("method")):
        style = method_style(method)
        runs = df[df["method"] == method]
        tuned[method] = _grid_of(runs)
        ax.plot(rows["T"], rows["share"], **style.line(), label=f"{method} — {tuned[method]}")
        for t, share, chosen, edge in zip(rows["T"], rows["share"], rows["chosen"], rows["at_edge"]):
            if chosen != UNTUNED:
                value = chosen.split("=")[-1] + ("!" if edge else "")
                ax.annotate(
                    value,
                    (t, share),
                    xytext=(4, -11 - 9 * k),
                    textcoords="offset points",
                    fontsize=6,
                    color=style.color,
                )
        bad = rows[rows["diverged"] > 0]
        if len(bad):
            ax.plot(
                bad["T"],
                bad["share"],
                color=style.color,
                **DIVERGED_MARK,
                label=f"{method}: runs of the chosen setting diverged at this T",
            )
    ax.set(
        xlabel=label("T"),
        ylim=(-0.05, 1.05),
        ylabel=f"share of seeds solving\n({use} test accuracy ≥ {threshold:g})",
    )
    ax.set_xticks(sorted(table["T"].unique()))
    ax.legend(
        fontsize=7, title="next to a point: the chosen value; '!': at the edge of its grid", title_fontsize=6
    )
    jobs = df.drop_duplicates("job_dir")
    lines = header_lines(jobs, by=["method", "T"])
    if any(t != UNTUNED for t in tuned.values()):
        lines.append(
            f"selection per method and T: the setting with the largest share of seeds whose {use} test "
            f"accuracy over the evaluations reaches {threshold:g} (test set; ties: the smallest value)"
        )
    edges = int(table["at_edge"].sum())
    if edges:
        lines.append(f"{edges} choices at the edge of their grid (marked !)")
    other = table.groupby("method")["diverged_other_settings"].sum()
    if other.any():
        lines.append(
            "diverged runs of settings not chosen: "
            + ", ".join(f"{m} {int(n)}" for m, n in other.items() if n)
        )
    set_header(fig, "Length scaling: share of seeds that solve the task against T", lines)
    return fig, table


def _grid_of(runs: pd.DataFrame) -> str:
    """'tuned per T over lr ∈ {...}' or 'single setting, not tuned' (keys varying within a T)."""
    grid: dict = {}
    for _, group in runs.drop_duplicates("job_dir").groupby("T"):
        for key in tuned_keys(group, ["method", "T"]):
            grid.setdefault(key, set()).update(group[key].dropna().unique())
    if not grid:
        return UNTUNED
    return "tuned per T over " + "; ".join(f"{k} ∈ {{{grid_text(sorted(v))}}}" for k, v in grid.items())


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


def _bench_machine(bench: pd.DataFrame) -> str:
    """The machine line of the compute figure from the csv's device and threads columns."""
    parts = []
    for column, word in (("device", "device"), ("threads", "threads")):
        if column in bench and bench[column].notna().any():
            values = ", ".join(str(v) for v in sorted(bench[column].dropna().astype(str).unique()))
            parts.append(f"{word} {values}")
    what = "; ".join(parts) if parts else "machine not recorded in the csv"
    return f"times measured on: {what} (one process, the methods taking turns; CPU model not recorded)"


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
    time = bench["median_ms"].notna().any()
    memory = "peak_mib" in bench and bench["peak_mib"].notna().any()
    if not (time or memory):
        raise DataError("compute: the csv has neither times (median_ms) nor peak memory (peak_mib)")
    by_t, by_d = bench[bench["hidden"] == hidden], bench[bench["T"] == length]
    panels = []
    if time:
        panels += [(by_t, "T", "median_ms", "time per iteration (ms)", f"{label('hidden')} = {hidden:g}")]
        panels += [(by_d, "hidden", "median_ms", "time per iteration (ms)", f"{label('T')} = {length:g}")]
    if memory:
        panels += [(by_t, "T", "peak_mib", "peak memory (MiB)", f"{label('hidden')} = {hidden:g}")]
    fig, axes = new_figure(1, len(panels), width=3.8)
    for ax, (rows, x, y, ylabel, title) in zip(axes[0], panels):
        _panel(ax, rows, x, y, ylabel)
        ax.set_title(title)
    lines = [f"batch {batch:g}; median over the timed iterations of each setting", _bench_machine(bench)]
    if not time:
        lines.append("time panels: no median_ms values in this csv (benchmark.py --no-time)")
    if not memory:
        lines.append("memory panel: no peak_mib column in this csv (older benchmark.py, or --no-memory)")
    axes[0, 0].legend(fontsize=7)
    what = " and ".join(
        w for w, has in (("time per training iteration", time), ("peak memory", memory)) if has
    )
    set_header(fig, f"Compute: {what}", lines)
    return fig
