"""Figures of curves against iterations: convergence, sensitivity, gradient behaviour.

With up to 3 seeds each seed is a thin line and the thick line their median; with more, the
median and a 25-75% quantile band (valid on log axes too). A diverged run gets an X at the
iteration where it diverged; where runs stop early the curve says how many still run.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from tpri.analysis.collect import DataError, family, summarize
from tpri.analysis.figures.style import (
    DIVERGED_MARK,
    VALUE_STYLES,
    Style,
    label,
    log_axis,
    method_style,
    new_figure,
    set_header,
    spans_decades,
    styled,
    tick_labels,
)
from tpri.analysis.figures.tasks import (
    check_pooled,
    header_lines,
    machine_line,
    pooled_line,
    refuse_mixed,
    with_task,
)
from tpri.analysis.figures.tuning import Choice, edge_note, runs_text, select

MAX_SEED_LINES = 3  # up to this many seeds: every seed drawn, no band
QUANTILES = (0.25, 0.75)
SEED_LINE = dict(linewidth=0.7, alpha=0.55)


def seeds_per_curve(runs: pd.DataFrame, by: list[str]) -> int:
    """The largest number of runs drawn in one curve (a group of `by`)."""
    return int(runs.drop_duplicates("job_dir").groupby(by, dropna=False)["job_dir"].nunique().max())


def band_note(runs: pd.DataFrame, by: list[str]) -> str:
    """What the lines and bands of a curve figure mean (legend title and caption)."""
    seeds = seeds_per_curve(runs, by)
    if seeds <= 1:
        return "one run per line (no band)"
    if seeds <= MAX_SEED_LINES:
        return f"thin lines: each of the {seeds} seeds; thick line: their median (no band)"
    low, high = (round(100 * q) for q in QUANTILES)
    return f"line: median over the {seeds} seeds; band: {low}–{high}% quantiles of the seeds"


ZEROS = "#d9d9d9"  # cells whose norm is exactly 0, outside the colour scale
NORMS = colormaps["viridis"].with_extremes(bad=ZEROS)


def _prepare(df: pd.DataFrame, what: str) -> pd.DataFrame:
    if df.empty:
        raise DataError(f"no runs to plot {what}")
    df = with_task(df) if "task" not in df else df
    refuse_mixed(df)
    return df


def is_accuracy(metric: str) -> bool:
    return "accuracy" in metric


def _stops(runs: pd.DataFrame) -> pd.Series:
    """Per diverged job of `runs`: the iteration at which it stopped (its last row if the
    summary has none)."""
    jobs = runs.drop_duplicates("job_dir").set_index("job_dir")
    jobs = jobs[jobs["status"] == "diverged"]
    last = runs.groupby("job_dir")["iteration"].max()
    stops = jobs["stop_iteration"] if "stop_iteration" in jobs else pd.Series(np.nan, jobs.index)
    return pd.Series({j: int(s if s == s else last[j]) for j, s in stops.items()}, dtype=object)


def diverged_at(runs: pd.DataFrame) -> list[int]:
    """The iteration at which each diverged job of `runs` stopped."""
    return list(_stops(runs).values)


def _x_at(rows: pd.DataFrame, x: str, iteration: int) -> float:
    """The x value of a job at `iteration`: the iteration itself, or the training time
    extrapolated at the job's mean seconds per iteration."""
    if x == "iteration":
        return float(iteration)
    timed = rows.dropna(subset=[x])
    timed = timed[timed["iteration"] > 0]
    if timed.empty:
        return float("nan")
    return float(timed[x].iloc[-1] / timed["iteration"].iloc[-1] * iteration)


def draw_runs(
    ax, runs: pd.DataFrame, x: str, metric: str, style: Style, name: str, offset: int = 0, short: str = ""
) -> list:
    """`metric` against `x` for the jobs of `runs` (one curve): up to MAX_SEED_LINES seeds each
    as a thin line and their median as the thick line; more seeds: the median and a band of
    the QUANTILES (valid on any monotone axis scale). Where runs stop early, the count still
    running is written on the curve; a diverged run gets an X at the iteration where it
    diverged, at its last finite value (legend: `short`, default `name`, and where). Returns
    the legend handles of the curve."""
    rows = runs.dropna(subset=["iteration", metric])
    if rows.empty:
        return []
    jobs = list(runs["job_dir"].unique())
    wide = rows.pivot_table(index="iteration", columns="job_dir", values=metric, aggfunc="first")
    xs = rows.groupby("iteration")[x].median().reindex(wide.index)
    count = wide.notna().sum(axis=1)
    median = wide.median(axis=1)
    if 1 < len(jobs) <= MAX_SEED_LINES:
        for job in wide.columns:
            seed = wide[job].dropna()
            ax.plot(xs[seed.index], seed, color=style.color, linestyle=style.linestyle, **SEED_LINE)
    elif len(jobs) > MAX_SEED_LINES:
        low, high = wide.quantile(QUANTILES[0], axis=1), wide.quantile(QUANTILES[1], axis=1)
        ax.fill_between(xs, low, high, color=style.color, alpha=0.18, linewidth=0)
    every = max(1, len(median) // 8)
    ax.plot(xs, median, **style.line(), markevery=(offset % every, every))
    _mark_running(ax, xs, median, count, len(jobs), style)
    handles = [Line2D([], [], **style.line(), label=name)]
    stops = _stops(runs)
    for job, stop in stops.items():
        finite = rows[rows["job_dir"] == job]
        if len(finite):
            ax.plot(_x_at(finite, x, stop), finite[metric].iloc[-1], color=style.color, **DIVERGED_MARK)
    if len(stops):
        its = ", ".join(str(s) for s in sorted(stops))
        share = f" ({len(stops)} of {len(jobs)} runs)" if len(jobs) > 1 else ""
        text = f"{short or name}: diverged at it {its}{share}"
        handles.append(Line2D([], [], color=style.color, **DIVERGED_MARK, label=text))
    return handles


def _mark_running(ax, xs: pd.Series, median: pd.Series, count: pd.Series, total: int, style: Style) -> None:
    """'k of n running' on the curve at each evaluation where runs have stopped."""
    if total <= 1:
        return
    drops = count[count.diff().fillna(0) < 0]
    for it, k in drops.items():
        ax.annotate(
            f"{int(k)} of {total} running",
            (xs[it], median[it]),
            xytext=(4, 6),
            textcoords="offset points",
            fontsize=7,
            color=style.color,
        )


def finish_axis(ax, metric: str, values) -> None:
    """Accuracy on [0, 1]; a log axis with power-of-ten labels when the values span decades."""
    if is_accuracy(metric):
        ax.set_ylim(0, 1)
    elif spans_decades(values):
        ax.set_yscale("log")
        log_axis(ax.yaxis, values)


def selection_rule(df: pd.DataFrame) -> str:
    """How `tuned` picks a method's setting, in words for the header."""
    last = int(df["iteration"].max()) if len(df) else 0
    return (
        "selection per method: the setting with the smallest area under the train-loss curve "
        f"(train loss at every evaluation, iterations 0..{last}, mean over seeds)"
    )


def tuned(df: pd.DataFrame, by: list[str]) -> tuple[pd.DataFrame, list[Choice]]:
    """The rows of the configuration with the smallest area under the train-loss curve per
    `by`, and what was chosen per group (`tuning.select`)."""
    best, choices = select(summarize(df, ["train_loss"]), by=by, score="auc_train_loss")
    return df[df["job_dir"].isin(best["job_dir"])], choices


def legend_name(method: str, choice: Choice | None) -> str:
    """'TP — lr=0.1 (tuned over ...)' or 'TP — single setting, not tuned'."""
    if choice is None:
        return method
    other = (
        f"; {runs_text(choice.diverged_other)} of other settings diverged" if choice.diverged_other else ""
    )
    return f"{method} — {choice.text()}{other}"


def choice_lines(df: pd.DataFrame, choices: list[Choice]) -> list[str]:
    """The header lines on how the drawn settings were chosen."""
    if not any(c.tuned for c in choices):
        return ["each method at a single setting, not tuned"]
    lines = [selection_rule(df)]
    edge = edge_note(choices)
    return [*lines, edge] if edge else lines


@styled
def plot_convergence(df: pd.DataFrame, metrics=("train_loss", "test_accuracy")) -> Figure:
    """Per method, its best configuration (smallest area under the train-loss curve, see
    `tuned`): each metric against iterations (top row) and training seconds (bottom row),
    every seed and their median (see `draw_runs`). The legend names each method's chosen
    setting and grid. One task only (UsageError otherwise)."""
    df = _prepare(df, "convergence")
    curves, choices = tuned(df, by=["method"])
    names = {c.group["method"]: legend_name(c.group["method"], c) for c in choices}
    fig, axes = new_figure(2, len(metrics))
    handles = {}
    for col, metric in enumerate(metrics):
        for row, x in enumerate(["iteration", "time"]):
            ax = axes[row, col]
            for i, (method, runs) in enumerate(curves.groupby("method")):
                name = names.get(method, method)
                for h in draw_runs(ax, runs, x, metric, method_style(method), name, i, short=method):
                    handles.setdefault(h.get_label(), h)
            finish_axis(ax, metric, curves[metric])
            ax.set(xlabel=label(x), ylabel=label(metric))
    fig.legend(
        handles=list(handles.values()),
        loc="outside lower center",
        ncols=1,
        title=band_note(curves, ["method"]),
        frameon=False,
    )
    what = " and ".join(label(m) for m in metrics)
    set_header(
        fig,
        f"Convergence: {what}",
        [*header_lines(curves), *choice_lines(df, choices), machine_line(curves)],
    )
    return fig


@styled
def plot_sensitivity(
    df: pd.DataFrame, key: str = "lr_target", metric: str = "test_accuracy", average_over=()
):
    """Per method where `key` varies (else every method), `metric` against iterations with one
    line per value of `key` (seeds as in `draw_runs`); another key varying within a line is
    refused (UsageError naming it) unless in `average_over`, then named in the header."""
    df = _prepare(df, "sensitivity curves")
    jobs = df.drop_duplicates("job_dir")
    pooled = check_pooled(jobs, ["method", key], f"sensitivity to {key}", average_over)
    varying = [m for m, runs in jobs.groupby("method") if runs[key].nunique() > 1]
    methods = varying or sorted(jobs["method"].unique())
    fig, axes = new_figure(1, len(methods), sharey=True)
    for ax, method in zip(axes[0], methods):
        runs = df[df["method"] == method]
        handles = []
        values = sorted(runs[key].dropna().unique())
        for i, (value, name) in enumerate(zip(values, tick_labels(values))):
            style = VALUE_STYLES[i % len(VALUE_STYLES)]
            handles += draw_runs(ax, runs[runs[key] == value], "iteration", metric, style, name, i)
        finish_axis(ax, metric, runs[metric])
        ax.set(xlabel=label("iteration"), ylabel=label(metric), title=method)
        ax.legend(handles=handles, title=label(key), fontsize=7)
    set_header(
        fig,
        f"Sensitivity of {label(metric)} to {label(key)}",
        [*header_lines(df, by=["method", key]), *pooled_line(jobs, pooled), band_note(df, ["method", key])],
    )
    return fig


GRADIENT_PANELS = [
    ("adjoint_norm", r"BP adjoint $\Vert\partial\ell/\partial h_t\Vert$"),
    ("displacement_norm", r"TP displacement $\Vert v_t - h_t\Vert$"),
]
ZERO_NOTE = "grey cell: norm exactly 0 (every entry of the vector is 0)"


def gradient_source(grads: pd.DataFrame) -> pd.DataFrame:
    """The rows of the one run both top panels read: the first TP run that logged both the BP
    adjoints and its displacements (same run, same iterations), else the first run that logged
    any of them."""
    logged = grads.dropna(subset=["adjoint_norm", "displacement_norm"], how="any")
    if logged.empty:
        logged = grads.dropna(subset=["adjoint_norm", "displacement_norm"], how="all")
    if logged.empty:
        return logged
    tp = logged[family(logged) == "TP"]
    job = (tp if len(tp) else logged)["job_dir"].iloc[0]
    return grads[grads["job_dir"] == job]


def direction_column(metrics: pd.DataFrame) -> str:
    """The direction norm before the step (the paper's plot); runs logged before it existed
    only have the update norm after lr and momentum."""
    if "direction_norm" in metrics and metrics["direction_norm"].notna().any():
        return "direction_norm"
    return "update_norm"


def _norm_panel(fig, ax, rows: pd.DataFrame, column: str, title: str) -> bool:
    """One time step x iteration panel of a norm; whether it has exact zeros."""
    ax.set(title=title, xlabel=label("iteration"), ylabel="time step $t$")
    ax.grid(False)
    if column not in rows or not (rows[column] > 0).any():
        note = "all exactly 0" if column in rows and rows[column].notna().any() else "not logged"
        ax.text(0.5, 0.5, note, ha="center", va="center", transform=ax.transAxes)
        return False
    grid = rows.pivot_table(index="step", columns="iteration", values=column, aggfunc="mean")
    values = np.ma.masked_less_equal(grid.to_numpy(), 0)
    mesh = ax.pcolormesh(grid.columns, grid.index, values, shading="nearest", norm=LogNorm(), cmap=NORMS)
    bar = fig.colorbar(mesh, ax=ax, label="norm (log scale)")
    log_axis(bar.ax.yaxis, values.compressed())
    return bool(np.ma.getmaskarray(values).any())


@styled
def plot_gradients(grads: pd.DataFrame, metrics: pd.DataFrame) -> Figure:
    """Top: per time step t and evaluated iteration, the BP adjoint norm ||dl/dh_t|| and the TP
    displacement norm ||v_t - h_t||, both from one run at the same iterations (the TP run logs
    both; see `gradient_source`), log colour, exact zeros grey (`grads` as from
    `collect.read_gradients`). Bottom: the norm of the direction before the step (sum over the
    recurrence's tensors of ||p.grad||, before lr and momentum) and the spectral norm of W
    against iterations, per method (`metrics`: rows of the table)."""
    if grads.empty or metrics.empty:
        raise DataError("no runs to plot gradients")
    metrics = _prepare(metrics, "gradients")
    check_pooled(metrics, ["method"], "gradients (norms of W per method)")
    source = gradient_source(grads)
    fig, axes = new_figure(2, 2)
    zeros = False
    where = f"{source['method'].iloc[0]} run" if len(source) else ""
    for ax, (column, title) in zip(axes[0], GRADIENT_PANELS):
        zeros |= _norm_panel(fig, ax, source, column, f"{title}\n{where}" if where else title)
    handles = []
    names = {c.group["method"]: legend_name(c.group["method"], c) for c in tuned(metrics, by=["method"])[1]}
    for ax, column in zip(axes[1], [direction_column(metrics), "w_spectral_norm"]):
        for i, (method, runs) in enumerate(metrics.groupby("method")):
            if column in runs and runs[column].notna().any():
                name = names.get(method, method)
                for h in draw_runs(
                    ax, runs, "iteration", column, method_style(method), name, i, short=method
                ):
                    if h.get_label() not in [k.get_label() for k in handles]:
                        handles.append(h)
        ax.set(xlabel=label("iteration"), ylabel=label(column))
        if column in metrics:
            finish_axis(ax, column, metrics[column])
    if zeros:
        handles.append(Patch(facecolor=ZEROS, edgecolor="none", label=ZERO_NOTE))
    fig.legend(handles=handles, loc="outside lower center", ncols=3, frameon=False)
    lines = header_lines(metrics)
    if len(source):
        its = sorted(source["iteration"].unique())
        lines.append(
            f"top: adjoints and displacements of the same {where} at the same "
            f"{len(its)} iterations ({its[0]:g}..{its[-1]:g}), mean over the batch"
        )
    set_header(fig, "Gradient behaviour: per-step BP adjoints vs TP displacements, norms of W", lines)
    return fig
