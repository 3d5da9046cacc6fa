"""What a figure's runs were: the task as run, its budget and seeds, and the guard against
pooling runs of different tasks or averaging over a key that is not on an axis (refused
unless asked for with --average-over).

    df = with_task(df)                        # adds T, task (readable) and task_slug columns
    for slug, runs in split_tasks(df): ...    # one table per task
    lines = header_lines(jobs)                # "task: temporal order, T=60 · RNN d=100 · ..."
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from tpri.analysis.collect import UsageError, sequence_length, swept_keys
from tpri.configs.build import DEFAULT_MODEL, MODELS
from tpri.data import TASKS


def _get(row: pd.Series, key: str, default=None):
    value = row.get(key, default)
    return default if value is None or (isinstance(value, float) and np.isnan(value)) else value


def _truthy(value) -> bool:
    return str(value).lower() in ("true", "1", "1.0")


def _variant(row: pd.Series, name: str) -> tuple[list[str], list[str]]:
    """The dataset's own (words, slug parts) for this row's options (its Task class's)."""
    if name not in TASKS:
        return [], []
    options = {k.removeprefix("dataset."): _get(row, k) for k in row.index if k.startswith("dataset.")}
    return TASKS[name].variant({k: v for k, v in options.items() if v is not None})


def task_name(row: pd.Series) -> str:
    """The task as run, without T: 'permuted digits 8x8 as a stand-in for MNIST, GRU'."""
    name = str(_get(row, "dataset.name", _get(row, "dataset", "?")))
    words = [TASKS[name].label or name if name in TASKS else name]
    if _truthy(_get(row, "dataset.permute", False)):
        words.insert(0, "permuted")
    words += _variant(row, name)[0]
    model = str(_get(row, "model.name", _get(row, "model", DEFAULT_MODEL)))
    return f"{' '.join(words)}, {MODELS[model].label if model in MODELS else model}"


def _slug(row: pd.Series, with_length: bool) -> str:
    name = str(_get(row, "dataset.name", _get(row, "dataset", "task")))
    parts = [name]
    if _truthy(_get(row, "dataset.permute", False)):
        parts.append("permuted")
    parts += _variant(row, name)[1]
    model = str(_get(row, "model.name", _get(row, "model", DEFAULT_MODEL)))
    if model != DEFAULT_MODEL:
        parts.append(model)
    if with_length and np.isfinite(row["T"]):
        parts.append(f"T{row['T']:g}")
    return "_".join(parts)


def with_task(df: pd.DataFrame) -> pd.DataFrame:
    """The table with the columns T (sequence length) and task (readable, without T)."""
    df = df.assign(T=sequence_length(df))
    jobs = df.drop_duplicates("job_dir").set_index("job_dir")
    names = {job: task_name(row) for job, row in jobs.iterrows()}
    return df.assign(task=df["job_dir"].map(names))


def split_tasks(df: pd.DataFrame, length_is_axis: bool = False) -> list[tuple[str, pd.DataFrame]]:
    """(slug, rows) per task: the dataset and its variant, the model and, unless T is an axis of
    the figure, T. Tables from `with_task`."""
    jobs = df.drop_duplicates("job_dir").set_index("job_dir")
    slugs = {job: _slug(row, not length_is_axis) for job, row in jobs.iterrows()}
    column = df["job_dir"].map(slugs)
    return [(slug, df[column == slug]) for slug in sorted(column.unique())]


def task_filter(runs: pd.DataFrame) -> str:
    """The --where conditions that keep the task of `runs` (its first row)."""
    row = runs.iloc[0]
    conditions = [f"dataset.name={_get(row, 'dataset.name', _get(row, 'dataset'))}"]
    for key in ("dataset.permute", "model.name", "dataset.length", "dataset.size_chunk"):
        value = _get(row, key)
        if value is not None and key in runs and runs[key].nunique(dropna=False) == 1:
            conditions.append(f"{key}={value:g}" if isinstance(value, float) else f"{key}={value}")
    return " ".join(conditions)


def refuse_mixed(df: pd.DataFrame, length_is_axis: bool = False) -> None:
    """UsageError naming the tasks and the --where filters if `df` holds several tasks."""
    tasks = split_tasks(df, length_is_axis)
    if len(tasks) > 1:
        hints = []
        for _, runs in tasks:
            length = "" if length_is_axis else f", T={runs['T'].iloc[0]:g}"
            hints.append(f"{runs['task'].iloc[0]}{length} (--where {task_filter(runs)})")
        raise UsageError(f"runs of {len(tasks)} different tasks would be pooled: {'; '.join(hints)}")


def _distinct_keys(jobs: pd.DataFrame, keys: list[str], *named) -> list[str]:
    """`keys` without the copies (same value in every job) of a named key or of a shorter
    kept one, e.g. optimizer.lr_target interpolating lr_target."""
    named = [k for group in named for k in group if k in jobs]
    kept: list[str] = []
    for key in sorted(keys, key=lambda k: (len(k), k)):
        values = jobs[key].astype(str)
        others = [k for k in [*named, *kept] if k != key]
        if not any(values.equals(jobs[other].astype(str)) for other in others):
            kept.append(key)
    return kept


def check_pooled(jobs: pd.DataFrame, by: list[str], what: str, average_over=()) -> list[str]:
    """The keys (not in `by`, not the seed) that vary among the runs of one group of `by`, i.e.
    within one drawn curve or cell. UsageError naming them unless each is in `average_over`
    (the --average-over of the command line); returns the keys averaged over."""
    jobs = jobs.drop_duplicates("job_dir")
    keys = _distinct_keys(
        jobs, [k for k in swept_keys(jobs) if k not in by and k != "seed"], by, average_over
    )
    if not keys or jobs.empty:
        return []
    varying = jobs.groupby(by, dropna=False)[keys].nunique(dropna=False).max()
    pooled = [k for k in keys if varying[k] > 1]
    refused = [k for k in pooled if k not in average_over]
    if refused:
        raise UsageError(
            f"{what}: runs drawn together differ in {', '.join(refused)}; keep one value with "
            f"--where KEY=VALUE or average over it with --average-over {' '.join(refused)}"
        )
    return pooled


def pooled_line(jobs: pd.DataFrame, pooled: list[str]) -> list[str]:
    """The header line naming the keys averaged over (--average-over), none if none."""
    if not pooled:
        return []
    parts = [_values(jobs.drop_duplicates("job_dir"), k, k) or k for k in pooled]
    return [f"averaged over {'; '.join(parts)} (--average-over)"]


def _values(jobs: pd.DataFrame, key: str, name: str, unit: str = "") -> str | None:
    """'d=100', 'd ∈ {16, 64}' or None if `key` is absent."""
    if key not in jobs or jobs[key].isna().all():
        return None
    values = sorted(jobs[key].dropna().unique())
    text = [f"{v:g}" if isinstance(v, (int, float, np.number)) else str(v) for v in values]
    if len(text) == 1:
        return f"{name}={text[0]}{unit}"
    if len(text) > 4:
        return f"{name}={text[0]}..{text[-1]}{unit}"
    return f"{name} ∈ {{{', '.join(text)}}}{unit}"


def seed_counts(jobs: pd.DataFrame, by: list[str]) -> str:
    """'3 seeds' or '1-3 seeds' per group of `by` (one row per job)."""
    counts = jobs.groupby(by, dropna=False)["seed"].nunique()
    low, high = int(counts.min()), int(counts.max())
    word = "seed" if high == 1 else "seeds"
    return f"{low} {word}" if low == high else f"{low}-{high} {word}"


def header_lines(jobs: pd.DataFrame, by: list[str] | None = None) -> list[str]:
    """The task line and the budget line of a figure's header: task as run, T, d, batch,
    iterations, seeds per setting (`by`: the columns of a setting; default method)."""
    jobs = jobs.drop_duplicates("job_dir")
    tasks = sorted(jobs["task"].unique())
    task = "; ".join(tasks)
    sizes = [_values(jobs, "T", "T"), _values(jobs, "model.hidden", "d")]
    budget = [_values(jobs, "batch_size", "batch"), _values(jobs, "max_iter", "iterations")]
    seeds = seed_counts(jobs, by or ["method"])
    line_task = ", ".join([task, *[s for s in sizes if s]])
    line_budget = ", ".join([*[b for b in budget if b], f"{seeds} per setting", f"{len(jobs)} runs"])
    return [*smoke_line(jobs), line_task, line_budget]


SMOKE = "SMOKE BUDGET"


def smoke_line(jobs: pd.DataFrame) -> list[str]:
    """'SMOKE BUDGET (sweep x_smoke): ...' when the runs come from a *_smoke sweep."""
    if "sweep" not in jobs:
        return []
    smoke = sorted({str(s) for s in jobs["sweep"].dropna() if str(s).endswith("_smoke")})
    if not smoke:
        return []
    return [f"{SMOKE} (sweep {', '.join(smoke)}): small tasks and budgets, not the paper's"]


def machine_line(jobs: pd.DataFrame) -> str:
    """The header line next to a time axis: the machine the runs' times were measured on (CPU
    model, cores, threads per job, jobs at once) and the load range at the runs' starts."""
    jobs = jobs.drop_duplicates("job_dir")
    if "machine" not in jobs or jobs["machine"].isna().all():
        return "times measured on: machine not recorded (runs older than this field)"
    values = jobs["machine"].dropna().astype(str)
    base = values.str.replace(r", load [0-9.]+ at start$", "", regex=True)
    loads = pd.to_numeric(values.str.extract(r"load ([0-9.]+) at start$")[0], errors="coerce")
    text = "; ".join(sorted(base.unique()))
    if loads.notna().any():
        low, high = loads.min(), loads.max()
        text += f"; 1-min load {low:g}" + (f"–{high:g}" if high > low else "") + " at the runs' starts"
    return f"times measured on: {text}"
