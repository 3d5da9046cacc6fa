"""What a figure shows, in sentences computed from the same runs: the numbers a reader would
read off it (final and best accuracies, diverged settings, the best cell, norms).

The report page prints them under each figure, and docs/figures.md quotes them, so that the
text about a figure comes from its runs, never from memory.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from tpri.collect import summarize
from tpri.figures.curves import GRADIENT_PANELS, direction_column, diverged_at, gradient_source, tuned
from tpri.figures.style import readable


def _num(value: float) -> str:
    return f"{value:.3g}" if value == value else "nan"


def _v(value) -> str:
    """A config value: numbers with %g, anything else as its string."""
    return (
        f"{value:g}"
        if isinstance(value, (int, float, np.number)) and not isinstance(value, bool)
        else str(value)
    )


def _it(value) -> str:
    return str(int(value)) if value == value and value is not None else "?"


def _range(values) -> str:
    values = [v for v in values if v == v]
    if not values:
        return "nan"
    low, high = min(values), max(values)
    return _num(low) if np.isclose(low, high) else f"{_num(low)}–{_num(high)}"


def _metric_sentence(method: str, runs: pd.DataFrame, metric: str) -> str:
    """'TP: test accuracy at iteration 1000: 1 and 0.99 (seeds 0, 1); best 1 at 900, 1000.'"""
    jobs = summarize(runs, [metric]).sort_values("seed")
    best_at = []
    for job, rows in runs.groupby("job_dir", sort=False):
        rows = rows.dropna(subset=[metric])
        if len(rows):
            pick = rows[metric].idxmax() if "accuracy" in metric else rows[metric].idxmin()
            best_at.append((job, int(rows.loc[pick, "iteration"])))
    best_at = dict(best_at)
    seeds = ", ".join(f"{s:g}" for s in jobs["seed"])
    last = int(jobs["last_iteration"].max())
    finals = ", ".join(_num(v) for v in jobs[f"final_{metric}"])
    bests = ", ".join(
        f"{_num(v)} at it {best_at.get(j, '?')}" for v, j in zip(jobs[f"best_{metric}"], jobs["job_dir"])
    )
    text = f"{method}: final {metric} {finals} (seeds {seeds}, iteration {last}); best {bests}"
    stops = diverged_at(runs)
    return text + (f"; diverged at it {', '.join(map(str, sorted(stops)))}" if stops else "")


def convergence(df: pd.DataFrame, metrics=("train_loss", "test_accuracy")) -> list[str]:
    curves = tuned(df, by=["method"])
    return [_metric_sentence(m, runs, metric) for metric in metrics for m, runs in curves.groupby("method")]


def sensitivity(df: pd.DataFrame, key: str, metric: str) -> list[str]:
    out = []
    for (method, value), runs in df.groupby(["method", key]):
        jobs = summarize(runs, [metric])
        stops = diverged_at(runs)
        finals = _range(jobs[f"final_{metric}"])
        text = f"{method}, {key}={_v(value)}: final {metric} {finals} over {len(jobs)} runs"
        out.append(text + (f"; diverged at it {', '.join(map(str, sorted(stops)))}" if stops else ""))
    return out


def heatmap(df: pd.DataFrame, x: str, y: str, metric: str, value: str) -> list[str]:
    jobs = summarize(df, [metric])
    column = f"{value}_{metric}"
    out = []
    for method, runs in jobs.groupby("method"):
        good = runs[runs["status"] == "completed"].groupby([x, y])[column].mean().dropna()
        if len(good):
            (lx, ly), (hx, hy) = good.idxmin(), good.idxmax()
            low = f"smallest {column} {_num(good.min())} at {x}={_v(lx)}, {y}={_v(ly)}"
            out.append(f"{method}: {low}; largest {_num(good.max())} at {x}={_v(hx)}, {y}={_v(hy)}")
        bad = runs[runs["status"] == "diverged"].sort_values([x, y])
        cells = [f"({_v(r[x])}, {_v(r[y])}) at it {_it(r.get('stop_iteration'))}" for _, r in bad.iterrows()]
        if cells:
            out.append(f"{method}: diverged ({x}, {y}): {', '.join(cells)}")
    return out


def winner(table: pd.DataFrame, methods) -> list[str]:
    first, second = methods
    wins = table["winner"].value_counts()
    margins = 100 * table["margin"].dropna()
    out = [
        f"{first} wins {int(wins.get(first, 0))} and {second} {int(wins.get(second, 0))} "
        f"of {len(table)} cells"
    ]
    if len(margins):
        out.append(f"{first} − {second} margin from {_num(margins.min())} to {_num(margins.max())} points")
    for method in methods:
        column = f"diverged_{method}"
        if column in table and table[column].sum():
            cells = table[table[column] > 0]
            where = ", ".join(f"T={t:g} d={d:g}" for t, d in zip(cells["T"], cells["model.hidden"]))
            out.append(f"{int(table[column].sum())} {method} runs diverged ({where})")
    return out


def gradients(grads: pd.DataFrame, metrics: pd.DataFrame) -> list[str]:
    out = []
    source = gradient_source(grads)
    steps = grads["step"].max()
    for column, _ in GRADIENT_PANELS:
        rows = source[source[column].notna()] if column in source else source.iloc[:0]
        if rows.empty:
            continue
        by_step = rows.groupby("step")[column].mean()
        zero = by_step[by_step <= 0].index
        name = f"{rows['method'].iloc[0]} run's {readable(column)}"
        top, bottom = _num(by_step.loc[steps]), _num(by_step.iloc[0])
        text = f"{name} (mean over iterations): {top} at t={steps:g}, {bottom} at t=1"
        positive = by_step[by_step > 0]
        if len(positive):
            text += f"; smallest non-zero {_num(positive.min())} at t={positive.idxmin():g}"
        if len(zero):
            text += f"; exactly 0 at {len(zero)} steps (t ≤ {zero.max():g})"
        out.append(text)
    for column in (direction_column(metrics), "w_spectral_norm"):
        if column not in metrics:
            continue
        for method, runs in metrics.groupby("method"):
            values = runs.dropna(subset=[column]).sort_values("iteration")[column]
            if len(values):
                out.append(
                    f"{method} {readable(column)}: {_range(values)} "
                    f"(first {_num(values.iloc[0])}, last {_num(values.iloc[-1])})"
                )
    return out


def length_scaling(table: pd.DataFrame) -> list[str]:
    return [
        f"{method}: share solving "
        + ", ".join(f"T={t:g}: {s:.2g} of {n}" for t, s, n in zip(r["T"], r["share"], r["seeds"]))
        for method, r in table.groupby("method")
    ]


def compute(bench: pd.DataFrame) -> list[str]:
    top = bench[bench["T"] == bench["T"].max()]
    top = top[top["hidden"] == top["hidden"].max()]
    base = top.loc[top["method"] == "bp", "median_ms"]
    out = []
    for _, row in top.iterrows():
        ratio = f" ({row['median_ms'] / base.iloc[0]:.2g}x BP)" if len(base) else ""
        memory = (
            f", {row['peak_mib']:.3g} MiB" if "peak_mib" in row and row["peak_mib"] == row["peak_mib"] else ""
        )
        out.append(
            f"T={row['T']:g} d={row['hidden']:g}: {row['method']} {row['median_ms']:.3g} ms{ratio}{memory}"
        )
    return out
