"""Figures of grids of settings: the lr x reg heatmap and the TP-vs-BP winner over T x width.

Diverged settings are marked with an × (heatmap) or a dagger (winner) explained in a legend.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.colors import LogNorm, Normalize
from matplotlib.patches import Patch, Rectangle

from tpri.analysis.collect import DataError, family, sequence_length, summarize
from tpri.analysis.figures.style import label, new_figure, set_header, spans_decades, styled, tick_labels
from tpri.analysis.figures.tasks import check_pooled, header_lines, pooled_line, refuse_mixed, with_task
from tpri.analysis.figures.tuning import UNTUNED, choice_of, grid_text, select, tuned_keys

DIVERGED = "#B2182B"


def _grid_ticks(ax, xs, ys, x: str, y: str) -> None:
    ax.set_xticks(range(len(xs)), tick_labels(xs))
    ax.set_yticks(range(len(ys)), tick_labels(ys))
    ax.set(xlabel=label(x), ylabel=label(y))
    ax.grid(False)


@styled
def plot_heatmap(
    df: pd.DataFrame,
    x: str = "lr",
    y: str = "reg",
    metric: str = "train_loss",
    value: str = "auc",
    average_over=(),
):
    """Per method, a grid over `x` and `y` coloured by the mean over seeds of the area under the
    `metric` curve divided by the iterations (value="auc": the curve's mean) or its final
    value (value="final"). A setting where a run diverged is hatched and marked × with the
    iteration, never scored; a setting without runs is blank. One task only; a key other than
    the axes and the seed varying within a cell is refused unless in `average_over`.
    Returns the figure and the set of diverged cells (method, x value, y value)."""
    if df.empty:
        raise DataError("no runs to plot a heatmap")
    df = with_task(df) if "task" not in df else df
    refuse_mixed(df)
    jobs = summarize(df, [metric]).dropna(subset=[x, y])
    if jobs.empty:
        raise DataError(f"no run sets both {x} and {y}")
    pooled = check_pooled(jobs, ["method", x, y], f"heatmap {x} x {y}", average_over)
    column = f"{value}_{metric}"
    jobs["diverged"] = jobs["status"].eq("diverged") | (
        jobs["status"].eq("completed") & ~np.isfinite(jobs[column].astype(float))
    )
    methods = sorted(jobs["method"].unique())
    fig, axes = new_figure(1, len(methods), width=5.0, height=4.2)
    good_values = jobs.loc[jobs["status"].eq("completed") & ~jobs["diverged"], column].astype(float)
    log = spans_decades(good_values)
    finite = good_values[np.isfinite(good_values) & ((good_values > 0) if log else True)]
    norm = (LogNorm if log else Normalize)(*(finite.agg(["min", "max"]) if len(finite) else (0, 1)))
    diverged = set()
    for ax, method in zip(axes[0], methods):
        runs = jobs[jobs["method"] == method]
        xs, ys = sorted(runs[x].unique()), sorted(runs[y].unique())
        bad = runs[runs["diverged"]].groupby([x, y])
        good = runs[runs["status"].eq("completed") & ~runs["diverged"]]
        grid = good.pivot_table(index=y, columns=x, values=column, aggfunc="mean")
        grid = grid.reindex(index=ys, columns=xs).astype(float)
        stops = bad["stop_iteration"].min() if "stop_iteration" in runs else bad["last_iteration"].min()
        for vx, vy in stops.index:
            grid.loc[vy, vx] = np.nan
        image = ax.imshow(
            np.ma.masked_invalid(grid.to_numpy()), origin="lower", aspect="auto", cmap="viridis", norm=norm
        )
        for j, vy in enumerate(ys):
            for i, vx in enumerate(xs):
                if (vx, vy) in stops.index:
                    ax.add_patch(_hatch(i, j))
                    it = stops[(vx, vy)]
                    note = f"×\nit {it:g}" if it == it else "×"
                    ax.text(
                        i,
                        j,
                        note,
                        ha="center",
                        va="center",
                        color=DIVERGED,
                        fontsize=8,
                        fontweight="bold",
                        bbox=dict(facecolor="white", edgecolor="none", pad=1),
                    )
                    diverged.add((method, vx, vy))
                elif np.isfinite(v := grid.loc[vy, vx]):
                    dark = norm(v) < 0.5
                    ax.text(
                        i,
                        j,
                        f"{v:.2g}",
                        ha="center",
                        va="center",
                        fontsize=7,
                        color="white" if dark else "black",
                    )
        _grid_ticks(ax, xs, ys, x, y)
        ax.set_title(method)
    what = "mean over training (area under the curve ÷ iterations)" if value == "auc" else "final value"
    fig.colorbar(image, ax=list(axes[0]), label=f"{label(metric)}: {what},\nmean over seeds")
    handles = [
        Patch(
            facecolor="none",
            edgecolor=DIVERGED,
            hatch="xx",
            label="× it N: a run of this setting diverged at iteration N (not scored)",
        ),
        Patch(facecolor="white", edgecolor="0.6", label="blank: no run of this setting"),
    ]
    fig.legend(handles=handles, loc="outside lower center", ncols=2, frameon=False)
    better = "higher" if "accuracy" in metric else "lower"
    title = f"Heatmap: {label(metric)} over {label(x)} × {label(y)} ({better} is better)"
    set_header(fig, title, [*header_lines(df, by=["method", x, y]), *pooled_line(jobs, pooled)])
    return fig, diverged


def _hatch(i: int, j: int) -> Rectangle:
    return Rectangle((i - 0.5, j - 0.5), 1, 1, fill=False, hatch="xx", edgecolor=DIVERGED, linewidth=0)


def winner_table(df: pd.DataFrame, methods=("TP", "BP")) -> pd.DataFrame:
    """Per sequence length T and width d: the score of each method family, the area under the
    test-accuracy curve (mean over seeds) of its configuration with the smallest area under
    the train-loss curve, diverged runs excluded; the winner (the first only when its score is
    strictly larger, ties to the second; the only one with a score), the margin (first minus
    second, NaN if one has no score), each family's chosen setting (`<family>_chosen`) and
    whether it sits at an edge of its grid (`<family>_at_edge`), and the number of diverged
    runs of each family (`diverged_<family>`)."""
    jobs = summarize(df)
    jobs = jobs.assign(T=sequence_length(jobs), family=family(jobs))
    jobs = jobs[jobs["family"].isin(methods)]
    cell = ["T", "model.hidden"]
    counts = (
        jobs[jobs["status"] == "diverged"]
        .groupby([*cell, "family"])
        .size()
        .unstack("family")
        .reindex(columns=list(methods))
        .fillna(0)
        .astype(int)
    )
    counts.columns = [f"diverged_{m}" for m in counts.columns]
    ok = jobs[jobs["status"].eq("completed") & np.isfinite(jobs["auc_train_loss"].astype(float))]
    chosen = [f"{m}_{c}" for m in methods for c in ("chosen", "at_edge")]
    if ok.empty:
        return pd.DataFrame(columns=[*cell, *methods, "margin", "winner", *chosen, *counts.columns])
    best, choices = select(jobs, by=[*cell, "family"])  # grids include the diverged settings
    best = best[best["job_dir"].isin(ok["job_dir"])]
    table = best.pivot_table(
        index=cell, columns="family", values="auc_test_accuracy", aggfunc="mean"
    ).reindex(columns=list(methods))
    first, second = methods
    table["margin"] = table[first] - table[second]
    # the first wins only when strictly larger: ties go to the second (as the authors' script)
    table["winner"] = np.where(table[first].fillna(-np.inf) > table[second].fillna(-np.inf), first, second)
    for m in methods:
        for index in table.index:
            choice = choice_of(choices, **dict(zip(cell, index)), family=m)
            table.loc[index, f"{m}_chosen"] = choice.setting() or UNTUNED if choice else ""
            table.loc[index, f"{m}_at_edge"] = bool(choice and choice.edge)
    table = table.join(counts).fillna({c: 0 for c in counts.columns}).astype({c: int for c in counts.columns})
    table.columns.name = None
    return table.reset_index()


def _pick(method: str, row: pd.Series) -> str:
    """'TP 0.01' (the chosen value) with '!' when at the edge of its grid."""
    value = str(row[f"{method}_chosen"]).split("=")[-1]
    return f"{method} {value}{'!' if row.get(f'{method}_at_edge') else ''}"


def _grids(df: pd.DataFrame, methods) -> str:
    """'TP tuned over tuned_lr ∈ {...}; BP ...' or 'BP: single setting, not tuned' per method:
    the keys that vary within a cell."""
    jobs = df.drop_duplicates("job_dir")
    jobs = jobs.assign(family=family(jobs), T=sequence_length(jobs))
    parts = []
    for m in methods:
        grid: dict = {}
        for _, runs in jobs[jobs["family"] == m].groupby(["T", "model.hidden"]):
            for key in tuned_keys(runs, ["T", "model.hidden", "family"]):
                grid.setdefault(key, set()).update(runs[key].dropna().unique())
        text = "; ".join(f"{k} ∈ {{{grid_text(sorted(v))}}}" for k, v in grid.items())
        parts.append(f"{m} tuned over {text}" if text else f"{m}: {UNTUNED}")
    return "; ".join(parts)


@styled
def plot_winner(df: pd.DataFrame, methods=("TP", "BP")):
    """Heatmap over sequence length T x width d of the winner between two method families
    (see `winner_table`), coloured by the signed margin first − second in percentage points
    of the area under the test-accuracy curve, annotated with the winner and that signed
    margin; a dagger counts the diverged runs. Returns the figure and the table."""
    if df.empty:
        raise DataError("no runs to plot the winner heatmap")
    df = with_task(df) if "task" not in df else df
    refuse_mixed(df, length_is_axis=True)
    table = winner_table(df, methods)
    first, second = methods
    if table.empty:
        raise DataError(
            f"no completed {first} or {second} run with a finite train loss "
            f"(all {df['job_dir'].nunique()} runs diverged or failed)"
        )
    bound = float(np.nanmax(np.abs(table["margin"]))) if table["margin"].notna().any() else 0.0
    bound = 100 * (bound or 0.01)
    ts, ds = sorted(table["T"].unique()), sorted(table["model.hidden"].unique())
    grid = np.full((len(ds), len(ts)), np.nan)
    fig, axes = new_figure(width=6.2, height=4.6)
    ax = axes[0, 0]
    for _, row in table.iterrows():
        i, j = ts.index(row["T"]), ds.index(row["model.hidden"])
        margin = 100 * row["margin"]
        signed = margin if margin == margin else (bound if row["winner"] == first else -bound)
        grid[j, i] = signed
        note = f"{row['winner']} only" if margin != margin else f"{row['winner']}\n{margin:+.1f}"
        daggers = [f"†{m} {int(row[f'diverged_{m}'])}" for m in methods if row.get(f"diverged_{m}", 0)]
        picks = [_pick(m, row) for m in methods if row.get(f"{m}_chosen") not in ("", UNTUNED, None)]
        text = "\n".join([note.replace("-", "−"), *daggers, *picks])
        color = "white" if abs(signed) > bound / 2 else "black"
        ax.text(i, j, text, ha="center", va="center", fontsize=7, color=color)
    ax.imshow(np.ma.masked_invalid(grid), origin="lower", aspect="auto", cmap="RdBu", vmin=-bound, vmax=bound)
    _grid_ticks(ax, ts, ds, "T", "model.hidden")
    image = ax.images[0]
    fig.colorbar(
        image,
        ax=ax,
        label=f"{first} − {second}: area under the test-accuracy curve\n"
        f"(percentage points; blue: {first} better)",
    )
    fig.legend(
        handles=[
            Patch(
                facecolor="none",
                edgecolor="none",
                label=f"cell: winner and {first} − {second} in points; "
                f"'only': the other has no completed run",
            ),
            Patch(
                facecolor="none",
                edgecolor="none",
                label="†X n: n runs of X diverged in this cell (excluded from tuning)",
            ),
            Patch(
                facecolor="none",
                edgecolor="none",
                label="X v: X's chosen value of the tuned key; '!' at the edge of its grid (widen it)",
            ),
        ],
        loc="outside lower center",
        ncols=1,
        frameon=False,
        handlelength=0,
    )
    jobs = df.drop_duplicates("job_dir").assign(family=family)
    title = f"Winner {first} vs {second} over {label('T')} × {label('model.hidden')}"
    last = int(df["iteration"].max())
    rule = (
        f"selection per cell and method: smallest area under the train-loss curve (iterations 0..{last}, "
        f"mean over seeds); score: area under the test-accuracy curve; {first} wins only if strictly larger"
    )
    grids = _grids(df, methods)
    edges = int(sum(table[f"{m}_at_edge"].sum() for m in methods))
    lines = [*header_lines(jobs, by=["T", "model.hidden", "family"]), rule, grids]
    if edges:
        lines.append(f"{edges} choices at the edge of their grid (marked !)")
    set_header(fig, title, lines)
    return fig, table
