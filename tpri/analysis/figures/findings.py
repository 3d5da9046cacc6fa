"""What a figure shows, in sentences computed from the same runs: the numbers a reader would
read off it (final and best accuracies, diverged settings, the best cell, norms).

The report page prints them under each figure, and docs/figures.md quotes them, so that the
text about a figure comes from its runs, never from memory.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from tpri.analysis.collect import summarize
from tpri.analysis.figures.curves import (
    GRADIENT_PANELS,
    direction_column,
    diverged_at,
    gradient_source,
    tuned,
)
from tpri.analysis.figures.style import readable, value_text
from tpri.analysis.figures.tuning import UNTUNED, choice_of, edge_note, runs_text


def _num(value: float) -> str:
    return f"{value:.3g}" if value == value else "nan"


def _it(value) -> str:
    return str(int(value)) if value == value and value is not None else "?"


def _range(values) -> str:
    values = [v for v in values if v == v]
    if not values:
        return "nan"
    low, high = min(values), max(values)
    return _num(low) if np.isclose(low, high) else f"{_num(low)}–{_num(high)}"


def _seed_part(rows: pd.DataFrame, metric: str, status: str, stop) -> str:
    """'seed 0: 0.04 at it 1000 (best 0.03 at it 800)' or 'seed 1: diverged at it 0'."""
    seed = f"seed {value_text(rows['seed'].iloc[0])}"
    finite = rows.dropna(subset=[metric])
    finite = finite[np.isfinite(finite[metric].astype(float))]
    if status == "diverged":
        text = f"{seed}: diverged at it {_it(stop)}"
        if len(finite) and int(finite["iteration"].iloc[-1]) > 0:
            last = finite.iloc[-1]
            text += f" (last finite {_num(last[metric])} at it {_it(last['iteration'])})"
        return text
    if finite.empty:
        return f"{seed}: no finite value"
    last = finite.iloc[-1]
    pick = finite[metric].idxmax() if "accuracy" in metric else finite[metric].idxmin()
    best = finite.loc[pick]
    return (
        f"{seed}: {_num(last[metric])} at it {_it(last['iteration'])} "
        f"(best {_num(best[metric])} at it {_it(best['iteration'])})"
    )


def _metric_sentence(method: str, runs: pd.DataFrame, metric: str, choice=None) -> str:
    """'TP, lr=0.1 (tuned over ...): train loss: seed 0: 0.04 at it 1000 (best ...); seed 1: ...'."""
    jobs = runs.drop_duplicates("job_dir").sort_values("seed")
    stops = dict(zip(jobs["job_dir"], jobs.get("stop_iteration", pd.Series(np.nan, jobs.index))))
    parts = [
        _seed_part(runs[runs["job_dir"] == job], metric, status, stops[job])
        for job, status in zip(jobs["job_dir"], jobs["status"])
    ]
    setting = f" [{choice.text()}]" if choice is not None else ""
    return f"{method}{setting}: {readable(metric)}: {'; '.join(parts)}"


def convergence(df: pd.DataFrame, metrics=("train_loss", "test_accuracy")) -> list[str]:
    curves, choices = tuned(df, by=["method"])
    out = [
        _metric_sentence(m, runs, metric, choice_of(choices, method=m))
        for metric in metrics
        for m, runs in curves.groupby("method")
    ]
    for choice in choices:
        if choice.diverged_other:
            method, n = choice.group["method"], choice.diverged_other
            out.append(f"{method}: {runs_text(n)} of its other settings diverged")
    edge = edge_note(choices)
    return [*out, edge] if edge else out


def sensitivity(df: pd.DataFrame, key: str, metric: str) -> list[str]:
    """'TP, lr_target=0.01: final test accuracy 0.82–0.88 over 2 of 2 runs (completed)' and
    the diverged runs with where they diverged (no final value for them)."""
    out = []
    for (method, value), runs in df.groupby(["method", key]):
        jobs = summarize(runs, [metric])
        done = jobs[jobs["status"] == "completed"]
        stops = diverged_at(runs)
        text = f"{method}, {key}={value_text(value)}: "
        if len(done):
            finals = _range(done[f"final_{metric}"])
            text += f"final {readable(metric)} {finals} over {len(done)} of {len(jobs)} runs"
        else:
            text += f"no run of {len(jobs)} completed"
        out.append(
            text + (f"; {len(stops)} diverged at it {', '.join(map(str, sorted(stops)))}" if stops else "")
        )
    return out


def heatmap(df: pd.DataFrame, x: str, y: str, metric: str, value: str) -> list[str]:
    jobs = summarize(df, [metric])
    column = f"{value}_{metric}"
    out = []
    for method, runs in jobs.groupby("method"):
        good = runs[runs["status"] == "completed"].groupby([x, y])[column].mean().dropna()
        if len(good):
            (lx, ly), (hx, hy) = good.idxmin(), good.idxmax()
            what = f"{'mean over training' if value == 'auc' else 'final'} {readable(metric)}"
            low = f"smallest {what} {_num(good.min())} at {x}={value_text(lx)}, {y}={value_text(ly)}"
            out.append(
                f"{method}: {low}; largest {_num(good.max())} at {x}={value_text(hx)}, {y}={value_text(hy)}"
            )
        bad = runs[runs["status"] == "diverged"].sort_values([x, y])
        cells = [
            f"({value_text(r[x])}, {value_text(r[y])}) at it {_it(r.get('stop_iteration'))}"
            for _, r in bad.iterrows()
        ]
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
        edge = table.get(f"{method}_at_edge")
        if edge is not None and edge.astype(bool).any():
            cells = table[edge.astype(bool)]
            where = ", ".join(
                f"T={t:g} d={d:g} ({c})"
                for t, d, c in zip(cells["T"], cells["model.hidden"], cells[f"{method}_chosen"])
            )
            out.append(
                f"{method}'s choice at the edge of its grid in {len(cells)} of {len(table)} cells "
                f"(widen the grid): {where}"
            )
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
        name = f"{rows['method'].iloc[0]} run's {readable(column)}"
        top, bottom = _num(by_step.loc[steps]), _num(by_step.iloc[0])
        text = f"{name} (mean over iterations): {top} at t={steps:g}, {bottom} at t=1"
        positive = rows[rows[column] > 0]
        if len(positive):
            text += f"; smallest non-zero {_num(positive[column].min())}"
        zero = rows[rows[column] <= 0]
        if len(zero):
            always = (rows.groupby("step")[column].max() <= 0).sum()
            its = zero["iteration"].nunique()
            text += (
                f"; exactly 0 (every entry 0) up to t={zero['step'].max():g} in {its} of "
                f"{rows['iteration'].nunique()} iterations, at every iteration for {always} steps"
            )
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
    """'BP: solves T=10 in 2 of 2 seeds (lr=0.01), T=20 in 0 of 2 seeds (lr=1e-05, at the edge
    of its grid)', per method: the chosen setting's share, as counts."""
    out = []
    for method, rows in table.groupby("method"):
        parts = []
        for _, r in rows.iterrows():
            chosen = (
                ""
                if r["chosen"] == UNTUNED
                else f" ({r['chosen']}{', at the edge of its grid' if r['at_edge'] else ''})"
            )
            parts.append(f"T={r['T']:g} in {int(r['solved'])} of {int(r['seeds'])} seeds{chosen}")
        out.append(f"{method}: solves " + ", ".join(parts))
        other = int(rows["diverged_other_settings"].sum())
        if other:
            out.append(f"{method}: {runs_text(other)} of settings not chosen diverged")
    return out


def compute(bench: pd.DataFrame) -> list[str]:
    top = bench[bench["T"] == bench["T"].max()]
    top = top[top["hidden"] == top["hidden"].max()]
    base = top.loc[top["method"] == "bp", "median_ms"]
    out = []
    for _, row in top.iterrows():
        parts = []
        if row["median_ms"] == row["median_ms"]:  # not NaN: the csv has times
            ratio = (
                f" ({row['median_ms'] / base.iloc[0]:.2g}x BP)" if len(base) and base.notna().all() else ""
            )
            parts.append(f"{row['median_ms']:.3g} ms{ratio}")
        if "peak_mib" in row and row["peak_mib"] == row["peak_mib"]:
            parts.append(f"{row['peak_mib']:.3g} MiB")
        out.append(f"T={row['T']:g} d={row['hidden']:g}: {row['method']} {', '.join(parts)}")
    return out
