"""Figures of curves against iterations: convergence, sensitivity, gradient behaviour.

Each draws the mean over seeds with a ± std band (accuracies clipped to [0, 1]); a diverged
run ends with an X and its legend entry says where it diverged.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from tpri.collect import DataError, best_configs, family, summarize
from tpri.figures.style import (
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
from tpri.figures.tasks import header_lines, refuse_mixed, warn_pooled, with_task


def band_note(runs: pd.DataFrame, by: list[str], accuracy: bool) -> str:
    """What the lines and bands of a curve figure mean."""
    seeds = runs.drop_duplicates("job_dir").groupby(by, dropna=False)["seed"].nunique().max()
    if seeds <= 1:
        return "one run per line (no band)"
    clip = " (accuracy band clipped to [0, 1])" if accuracy else ""
    return f"line: mean over seeds; band: ± 1 std over the seeds{clip}"


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


def diverged_at(runs: pd.DataFrame) -> list[int]:
    """The iteration at which each diverged job of `runs` stopped."""
    jobs = runs.drop_duplicates("job_dir")
    jobs = jobs[jobs["status"] == "diverged"]
    stops = jobs["stop_iteration"] if "stop_iteration" in jobs else pd.Series(np.nan, jobs.index)
    last = runs.groupby("job_dir")["iteration"].max()
    return [int(s if s == s else last[j]) for j, s in zip(jobs["job_dir"], stops)]


def draw_mean(ax, runs: pd.DataFrame, x: str, metric: str, style: Style, name: str, offset: int = 0) -> list:
    """`metric` against `x`, mean ± std over the jobs of `runs` at each iteration; an X at the
    last finite point of each diverged job. Returns the legend handles of the method."""
    rows = runs.dropna(subset=["iteration"])
    stats = rows.groupby("iteration").agg(
        x=(x, "mean"), mean=(metric, "mean"), std=(metric, "std"), n=(metric, "count")
    )
    stats = stats[stats["n"] > 0]
    if stats.empty:
        return []
    every = max(1, len(stats) // 8)
    ax.plot(stats["x"], stats["mean"], **style.line(), markevery=(offset % every, every))
    low, high = stats["mean"] - stats["std"], stats["mean"] + stats["std"]
    if is_accuracy(metric):
        low, high = low.clip(0, 1), high.clip(0, 1)
    if (stats["n"] > 1).any():
        ax.fill_between(stats["x"], low, high, color=style.color, alpha=0.18, linewidth=0)
    handles = [Line2D([], [], **style.line(), label=name)]
    stops = diverged_at(runs)
    for _, job_rows in rows[rows["status"] == "diverged"].groupby("job_dir"):
        finite = job_rows.dropna(subset=[metric])
        if len(finite):
            ax.plot(finite[x].iloc[-1], finite[metric].iloc[-1], color=style.color, **DIVERGED_MARK)
    if stops:
        n = runs["job_dir"].nunique()
        its = ", ".join(str(s) for s in sorted(stops))
        share = f" ({len(stops)} of {n} runs)" if n > 1 else ""
        handles.append(
            Line2D([], [], color=style.color, **DIVERGED_MARK, label=f"{name}: diverged at it {its}{share}")
        )
    return handles


def finish_axis(ax, metric: str, values) -> None:
    """Accuracy on [0, 1]; a log axis with power-of-ten labels when the values span decades."""
    if is_accuracy(metric):
        ax.set_ylim(0, 1)
    elif spans_decades(values):
        ax.set_yscale("log")
        log_axis(ax.yaxis, values)


def tuned(df: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    """The rows of the configuration with the smallest area under the train-loss curve per `by`."""
    best = best_configs(summarize(df, ["train_loss"]), by=by, score="auc_train_loss")
    return df[df["job_dir"].isin(best["job_dir"])]


@styled
def plot_convergence(df: pd.DataFrame, metrics=("train_loss", "test_accuracy")) -> Figure:
    """Per method, its best configuration (smallest area under the train-loss curve): each
    metric against iterations (top row) and training seconds (bottom row), mean ± std over
    seeds. One task only (UsageError otherwise)."""
    df = _prepare(df, "convergence")
    curves = tuned(df, by=["method"])
    fig, axes = new_figure(2, len(metrics))
    handles = {}
    for col, metric in enumerate(metrics):
        for row, x in enumerate(["iteration", "time"]):
            ax = axes[row, col]
            for i, (method, runs) in enumerate(curves.groupby("method")):
                for h in draw_mean(ax, runs, x, metric, method_style(method), method, offset=i):
                    handles.setdefault(h.get_label(), h)
            finish_axis(ax, metric, curves[metric])
            ax.set(xlabel=label(x), ylabel=label(metric))
    fig.legend(
        handles=list(handles.values()),
        loc="outside lower center",
        ncols=min(3, len(handles)),
        title=band_note(curves, ["method"], any(map(is_accuracy, metrics))),
        frameon=False,
    )
    what = " and ".join(label(m) for m in metrics)
    set_header(
        fig,
        f"Convergence: {what}, each method at its best setting (smallest area under the train-loss curve)",
        header_lines(curves),
    )
    return fig


@styled
def plot_sensitivity(df: pd.DataFrame, key: str = "lr_target", metric: str = "test_accuracy"):
    """Per method where `key` varies (else every method), `metric` against iterations with one
    line per value of `key`, mean ± std over seeds; warns naming any other key averaged over."""
    df = _prepare(df, "sensitivity curves")
    jobs = df.drop_duplicates("job_dir")
    warn_pooled(jobs, ["method", key], f"sensitivity to {key}")
    varying = [m for m, runs in jobs.groupby("method") if runs[key].nunique() > 1]
    methods = varying or sorted(jobs["method"].unique())
    fig, axes = new_figure(1, len(methods), sharey=True)
    for ax, method in zip(axes[0], methods):
        runs = df[df["method"] == method]
        handles = []
        values = sorted(runs[key].dropna().unique())
        for i, (value, name) in enumerate(zip(values, tick_labels(values))):
            style = VALUE_STYLES[i % len(VALUE_STYLES)]
            handles += draw_mean(ax, runs[runs[key] == value], "iteration", metric, style, name, i)
        finish_axis(ax, metric, runs[metric])
        ax.set(xlabel=label("iteration"), ylabel=label(metric), title=method)
        ax.legend(handles=handles, title=label(key), fontsize=7)
    set_header(
        fig,
        f"Sensitivity of {label(metric)} to {label(key)}",
        [*header_lines(df, by=["method", key]), band_note(df, ["method", key], is_accuracy(metric))],
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
    source = gradient_source(grads)
    fig, axes = new_figure(2, 2)
    zeros = False
    where = f"{source['method'].iloc[0]} run" if len(source) else ""
    for ax, (column, title) in zip(axes[0], GRADIENT_PANELS):
        zeros |= _norm_panel(fig, ax, source, column, f"{title}\n{where}" if where else title)
    handles = []
    for ax, column in zip(axes[1], [direction_column(metrics), "w_spectral_norm"]):
        for i, (method, runs) in enumerate(metrics.groupby("method")):
            if column in runs and runs[column].notna().any():
                for h in draw_mean(ax, runs, "iteration", column, method_style(method), method, i):
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
