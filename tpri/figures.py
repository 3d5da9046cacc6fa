"""The paper's figures from the table of runs of `tpri.collect`.

    df = collect("multirun/mnist_heatmap")
    fig, diverged = plot_heatmap(df)          # lr x reg, diverged cells hatched
    save(fig, "figures", "heatmap")           # figures/heatmap.png and .pdf

Every plot function returns a matplotlib Figure (rendered off-screen with Agg, no pyplot
state, nothing to close), sometimes with the numbers it drew. `scripts/plot_*.py` are thin
command lines over them.
"""

from __future__ import annotations

import argparse
import numbers
from pathlib import Path

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib import colormaps
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from matplotlib.ticker import LogFormatter, NullFormatter

from tpri.collect import best_configs, family, load, select, sequence_length, summarize

sns.set_theme(style="whitegrid", context="notebook", font_scale=0.9)

LABELS = {
    "lr": r"$\gamma_\theta$ (lr)",
    "lr_target": r"$\gamma_h$ (lr_target)",
    "reg": r"$r$ (reg)",
    "model.hidden": r"width $d$",
    "hidden": r"width $d$",
    "T": r"sequence length $T$",
    "dataset.length": r"sequence length $T$",
    "iteration": "iteration",
    "time": "wall-clock time (s)",
    "train_loss": "train loss",
    "train_accuracy": "train accuracy",
    "test_loss": "test loss",
    "test_accuracy": "test accuracy",
    "test_perplexity": "test perplexity",
    "update_norm": "update norm",
    "w_spectral_norm": r"spectral norm of $W$",
}
ZERO_BLACK = colormaps["magma"].with_extremes(bad="black")  # log colour scale, zeros masked
BENCH_METHODS = {"bp": "BP", "tp_graph": "TP (graph)", "tp_local": "TP (local)"}


def label(key: str) -> str:
    """The axis label of a column, with the paper's symbols."""
    return LABELS.get(key, key)


def _fmt(value) -> str:
    """A compact label for a config value: 0.001 -> 1e-03, 10.0 -> 10."""
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        return f"{value:.3g}"
    return str(value)


def _figure(nrows: int = 1, ncols: int = 1, width: float = 4.5, height: float = 3.5, **kwargs):
    """A Figure and its 2-d array of axes."""
    fig = Figure(figsize=(width * ncols, height * nrows), layout="constrained")
    return fig, fig.subplots(nrows, ncols, squeeze=False, **kwargs)


def _colors(methods) -> dict:
    """One colour per method, the same in every figure."""
    methods = sorted(set(methods))
    return dict(zip(methods, sns.color_palette("colorblind", len(methods))))


def save(fig: Figure, out_dir: str | Path, name: str) -> list[Path]:
    """Write `name.png` and `name.pdf` in `out_dir`; returns their paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / f"{name}.{ext}" for ext in ("png", "pdf")]
    for path in paths:
        fig.savefig(path, dpi=150, bbox_inches="tight")
    return paths


def _mean_band(ax, runs: pd.DataFrame, x: str, metric: str, name: str, color) -> None:
    """`metric` against `x`, averaged over the runs at each iteration, ± std if several."""
    rows = runs.dropna(subset=["iteration"]).groupby("iteration")
    mean, std = rows[metric].mean(), rows[metric].std()
    xs = mean.index if x == "iteration" else rows[x].mean()
    ax.plot(xs, mean, label=name, color=color)
    if rows[metric].count().max() > 1:
        ax.fill_between(xs, mean - std, mean + std, color=color, alpha=0.2, linewidth=0)


def _tuned(df: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    """The rows of the configuration with the smallest area under the train-loss curve per `by`."""
    best = best_configs(summarize(df, ["train_loss"]), by=by, score="auc_train_loss")
    return df[df["job_dir"].isin(best["job_dir"])]


def _need(df: pd.DataFrame, what: str) -> None:
    if df.empty:
        raise ValueError(f"no runs to plot {what}")


# ----------------------------------------------------------------------------- figures

def plot_convergence(df: pd.DataFrame, metrics=("train_loss", "test_accuracy")) -> Figure:
    """Per method, its best configuration (smallest area under the train-loss curve): each
    metric against iterations (top row) and wall-clock seconds (bottom row), mean ± std over
    seeds."""
    _need(df, "convergence")
    curves = _tuned(df, by=["method"])
    colors = _colors(curves["method"])
    fig, axes = _figure(2, len(metrics))
    for col, metric in enumerate(metrics):
        for row, x in enumerate(["iteration", "time"]):
            ax = axes[row, col]
            for method, runs in curves.groupby("method"):
                _mean_band(ax, runs, x, metric, method, colors[method])
            ax.set(xlabel=label(x), ylabel=label(metric))
    axes[0, 0].legend()
    return fig


def plot_heatmap(df: pd.DataFrame, x: str = "lr", y: str = "reg", metric: str = "train_loss",
                 value: str = "auc"):
    """Per method, a grid over `x` and `y` coloured by the mean over seeds of the area under the
    `metric` curve (value="auc") or its final value (value="final"). A cell where a seed
    diverged is hatched and marked ×, never scored; a cell without runs is blank.
    Returns the figure and the set of diverged cells (method, x value, y value)."""
    _need(df, "a heatmap")
    jobs = summarize(df, [metric]).dropna(subset=[x, y])
    column = f"{value}_{metric}"
    jobs["diverged"] = jobs["status"].eq("diverged") | (
        jobs["status"].eq("completed") & ~np.isfinite(jobs[column].astype(float)))
    methods = sorted(jobs["method"].unique())
    fig, axes = _figure(1, len(methods), width=5.5, height=4.5)
    diverged = set()
    for ax, method in zip(axes[0], methods):
        runs = jobs[jobs["method"] == method]
        xs, ys = sorted(runs[x].unique()), sorted(runs[y].unique())
        bad = {(vx, vy) for vx, vy in runs.loc[runs["diverged"], [x, y]].itertuples(index=False)}
        good = runs[runs["status"].eq("completed") & ~runs["diverged"]]
        grid = good.pivot_table(index=y, columns=x, values=column, aggfunc="mean")
        grid = grid.reindex(index=ys, columns=xs).astype(float)
        for vx, vy in bad:
            grid.loc[vy, vx] = np.nan
        image = ax.imshow(np.ma.masked_invalid(grid.to_numpy()), origin="lower", aspect="auto",
                          cmap="viridis")
        for j, vy in enumerate(ys):
            for i, vx in enumerate(xs):
                if (vx, vy) in bad:
                    ax.add_patch(Rectangle((i - 0.5, j - 0.5), 1, 1, fill=False, hatch="xx",
                                           edgecolor="tab:red", linewidth=0))
                    ax.text(i, j, "×", ha="center", va="center", color="tab:red", fontsize=14)
                    diverged.add((method, vx, vy))
                elif np.isfinite(v := grid.loc[vy, vx]):
                    dark = image.norm(v) < 0.5
                    ax.text(i, j, f"{v:.2g}", ha="center", va="center", fontsize=7,
                            color="white" if dark else "black")
        ax.set_xticks(range(len(xs)), [_fmt(v) for v in xs], rotation=45)
        ax.set_yticks(range(len(ys)), [_fmt(v) for v in ys])
        ax.set(xlabel=label(x), ylabel=label(y), title=method)
        ax.grid(False)
        name = "area under the" if value == "auc" else value
        fig.colorbar(image, ax=ax, label=f"{name} {label(metric)} (× diverged)")
    return fig, diverged


def winner_table(df: pd.DataFrame, methods=("TP", "BP")) -> pd.DataFrame:
    """Per sequence length T and width d: the score of each method family, the area under the
    test-accuracy curve (mean over seeds) of its configuration with the smallest area under
    the train-loss curve, diverged runs excluded; the winner (larger score; the only one
    with a score) and the margin (first minus second method, NaN if one has no score)."""
    jobs = summarize(df)
    jobs = jobs.assign(T=sequence_length(jobs), family=family(jobs))
    jobs = jobs[jobs["status"].eq("completed") & jobs["family"].isin(methods)
                & np.isfinite(jobs["auc_train_loss"].astype(float))]
    cell = ["T", "model.hidden"]
    best = best_configs(jobs, by=[*cell, "family"])
    table = best.pivot_table(index=cell, columns="family", values="auc_test_accuracy",
                             aggfunc="mean").reindex(columns=list(methods))
    first, second = methods
    table["margin"] = table[first] - table[second]
    table["winner"] = np.where(table[first].fillna(-np.inf) >= table[second].fillna(-np.inf),
                               first, second)
    table.columns.name = None
    return table.reset_index()


def plot_winner(df: pd.DataFrame, methods=("TP", "BP")):
    """Heatmap over sequence length T x width d of the winner between two method families
    (see `winner_table`), coloured by the signed margin and annotated with the winner and
    the margin in points of accuracy. Returns the figure and the table."""
    _need(df, "the winner heatmap")
    table = winner_table(df, methods)
    first, second = methods
    bound = float(np.nanmax(np.abs(table["margin"]))) if table["margin"].notna().any() else 1.0
    bound = bound or 1.0
    sign = np.where(table["winner"] == first, 1.0, -1.0)
    table_signed = table["margin"].fillna(pd.Series(sign * bound, index=table.index))
    ts, ds = sorted(table["T"].unique()), sorted(table["model.hidden"].unique())
    grid = np.full((len(ds), len(ts)), np.nan)
    fig, axes = _figure(width=6, height=4.5)
    ax = axes[0, 0]
    for (t, d, winner, margin), signed in zip(
            table[["T", "model.hidden", "winner", "margin"]].itertuples(index=False), table_signed):
        i, j = ts.index(t), ds.index(d)
        grid[j, i] = 100 * signed
        note = "only" if np.isnan(margin) else f"{100 * abs(margin):.1f}"
        color = "white" if abs(signed) > bound / 2 else "black"
        ax.text(i, j, f"{winner}\n{note}", ha="center", va="center", fontsize=8, color=color)
    image = ax.imshow(np.ma.masked_invalid(grid), origin="lower", aspect="auto", cmap="RdBu",
                      vmin=-100 * bound, vmax=100 * bound)
    ax.set_xticks(range(len(ts)), [_fmt(t) for t in ts])
    ax.set_yticks(range(len(ds)), [_fmt(d) for d in ds])
    ax.set(xlabel=label("T"), ylabel=label("model.hidden"),
           title=f"{first} (blue) vs {second} (red)")
    ax.grid(False)
    fig.colorbar(image, ax=ax, label=f"area under test accuracy, {first} − {second} (points)")
    return fig, table


def plot_sensitivity(df: pd.DataFrame, key: str = "lr_target", metric: str = "test_accuracy"):
    """Per method where `key` varies (else every method), `metric` against iterations with one
    line per value of `key`, mean ± std over seeds (other keys pooled: filter them first)."""
    _need(df, "sensitivity curves")
    varying = [m for m, runs in df.groupby("method") if runs[key].nunique() > 1]
    methods = varying or sorted(df["method"].unique())
    fig, axes = _figure(1, len(methods), sharey=True)
    for ax, method in zip(axes[0], methods):
        runs = df[df["method"] == method]
        values = sorted(runs[key].dropna().unique())
        for value, color in zip(values, sns.color_palette("viridis", len(values))):
            _mean_band(ax, runs[runs[key] == value], "iteration", metric, _fmt(value), color)
        ax.set(xlabel=label("iteration"), ylabel=label(metric), title=method)
        ax.legend(title=label(key), fontsize=8)
    return fig


def plot_gradients(grads: pd.DataFrame, metrics: pd.DataFrame) -> Figure:
    """Top: per time step t and iteration, the BP adjoint norm ||dl/dh_t|| and the TP
    displacement norm ||v_t - h_t|| (log colour; `grads` as from `collect.read_gradients`).
    Bottom: the update norm and spectral norm of W against iterations, per method (`metrics`:
    rows of the table)."""
    _need(grads, "gradients")
    fig, axes = _figure(2, 2)
    panels = [("adjoint_norm", "BP", r"BP adjoint $\Vert\partial\ell/\partial h_t\Vert$"),
              ("displacement_norm", "TP", r"TP displacement $\Vert v_t - h_t\Vert$")]
    for ax, (column, owner, title) in zip(axes[0], panels):
        rows = grads[grads[column].notna()] if column in grads else grads.iloc[:0]
        own = rows[family(rows) == owner]
        rows = own if len(own) else rows
        ax.set(title=title, xlabel=label("iteration"), ylabel="time step $t$")
        ax.grid(False)
        if not (rows[column] > 0).any():
            note = "all zero" if len(rows) else "not logged"
            ax.text(0.5, 0.5, note, ha="center", va="center", transform=ax.transAxes)
            continue
        grid = rows.pivot_table(index="step", columns="iteration", values=column, aggfunc="mean")
        mesh = ax.pcolormesh(grid.columns, grid.index, np.ma.masked_less_equal(grid.to_numpy(), 0),
                             shading="nearest", norm=LogNorm(), cmap=ZERO_BLACK)
        fig.colorbar(mesh, ax=ax, label="norm (black: 0)")
    colors = _colors(metrics["method"])
    for ax, column in zip(axes[1], ["update_norm", "w_spectral_norm"]):
        for method, runs in metrics.groupby("method"):
            if column in runs and runs[column].notna().any():
                _mean_band(ax, runs, "iteration", column, method, colors[method])
        ax.set(xlabel=label("iteration"), ylabel=label(column))
        if ax.lines:
            ax.legend()
    axes[1, 0].set_yscale("log")
    return fig


def solved_table(df: pd.DataFrame, threshold: float = 0.99, use: str = "best") -> pd.DataFrame:
    """Per method and sequence length T: the share of seeds whose `use` ("best" or "final")
    test accuracy reaches `threshold`, for the configuration with the largest share."""
    jobs = summarize(df, ["test_accuracy"])
    jobs = jobs.assign(T=sequence_length(jobs),
                       solved=jobs[f"{use}_test_accuracy"].astype(float) >= threshold)
    best = best_configs(jobs, by=["method", "T"], score="solved", higher=True)
    return best.groupby(["method", "T"])["solved"].agg(share="mean", seeds="count").reset_index()


def plot_length_scaling(df: pd.DataFrame, threshold: float = 0.99, use: str = "best"):
    """Share of seeds solving the task against the sequence length T, one line per method
    (see `solved_table`). Returns the figure and the table."""
    _need(df, "length scaling")
    table = solved_table(df, threshold, use)
    colors = _colors(table["method"])
    fig, axes = _figure(width=5.5)
    ax = axes[0, 0]
    for method, rows in table.groupby("method"):
        ax.plot(rows["T"], rows["share"], marker="o", label=method, color=colors[method])
    ax.set(xlabel=label("T"), ylim=(-0.05, 1.05),
           ylabel=f"share of seeds solving\n({use} test accuracy ≥ {threshold:g})")
    ax.legend()
    return fig, table


def _richest(bench: pd.DataFrame, fixed: str, varying: str):
    """The value of `fixed` with the most distinct values of `varying` (the largest on ties)."""
    counts = bench.groupby(fixed)[varying].nunique()
    return counts[counts == counts.max()].index.max()


def plot_compute(bench: pd.DataFrame, hidden: int | None = None, length: int | None = None):
    """Median milliseconds per iteration of bp / tp_graph / tp_local (a `scripts/benchmark.py`
    csv) against T at width `hidden`, and against the width at length `length` (log-log;
    defaults: the value with the most points; other columns pooled by median)."""
    _need(bench, "compute")
    hidden = hidden if hidden is not None else _richest(bench, "hidden", "T")
    length = length if length is not None else _richest(bench, "T", "hidden")
    fig, axes = _figure(1, 2)
    for ax, (fixed, value, x) in zip(axes[0], [("hidden", hidden, "T"), ("T", length, "hidden")]):
        rows = bench[bench[fixed] == value]
        for method, runs in rows.groupby("method"):
            times = runs.groupby(x)["median_ms"].median()
            ax.plot(times.index, times, marker="o", label=BENCH_METHODS.get(method, method))
        ax.set(xscale="log", yscale="log", xlabel=label(x), ylabel="time per iteration (ms)",
               title=f"{label(fixed)} = {_fmt(value)}")
        ticks = sorted(rows[x].unique())
        ax.set_xticks(ticks, [_fmt(t) for t in ticks], minor=False)
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.yaxis.set_major_formatter(LogFormatter())
        ax.yaxis.set_minor_formatter(LogFormatter(labelOnlyBase=False, minor_thresholds=(2, 0.5)))
    axes[0, 0].legend()
    return fig


# ----------------------------------------------------------------------------- command lines

def parser(description: str) -> argparse.ArgumentParser:
    """The arguments every plot script shares: RESULTS, --out, --where."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("results", type=Path, help="dir of runs (searched recursively) or results.csv")
    p.add_argument("--out", type=Path, default=None, help="output dir (default: RESULTS dir)")
    p.add_argument("--where", nargs="*", default=[], metavar="KEY=VALUE",
                   help="keep only the rows matching, e.g. dataset=mnist model.hidden=100")
    return p


def results_dir(args) -> Path:
    """The dir holding the runs (job dirs in the table are relative to it)."""
    return args.results.parent if args.results.is_file() else args.results


def load_args(args) -> pd.DataFrame:
    """The table of the runs named on the command line, filtered by --where."""
    return select(load(args.results), args.where)


def write(fig: Figure, args, name: str) -> None:
    """Save the figure in --out (default: the results dir) and print the paths written."""
    for path in save(fig, args.out or results_dir(args), name):
        print(path)
