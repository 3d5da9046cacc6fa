"""Collect Hydra runs into one tidy table: one row per job and evaluation.

    df = collect("multirun/2024-05-01")          # every job dir below, recursively
    jobs = summarize(df)                         # one row per job: areas under curves, final, best
    aggregate_seeds(jobs, ["auc_train_loss"])    # mean, std and count over seeds

A job dir holds `.hydra/config.yaml` (the job's config, unresolved), `.hydra/hydra.yaml`
(the chosen config groups), `metrics.csv` (one row per evaluation), `summary.json` (status)
and, when gradients were logged, `gradients.csv`. Jobs still running, interrupted or
unreadable are skipped with one warning; diverged and failed jobs stay in the table with their
status. Bad input raises `UsageError` (a wrong argument: exit 2 on a command line) or
`DataError` (nothing usable to read: exit 1).
"""

from __future__ import annotations

import csv
import inspect
import json
import math
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from omegaconf import OmegaConf

from tpri.configs.build import DIRECTIONS, OPTIMIZERS
from tpri.configs.schema import GROUPS
from tpri.data import TASKS
from tpri.io import save_text
from tpri.run.rundir import GONE, find_job_dirs, observed_status
from tpri.spec import field_spec

ID_COLUMNS = [
    "job_dir",
    "method",
    "dataset",
    "model",
    "optimizer",
    "seed",
    "status",
    "reason",
    "stop_iteration",
    "its_per_sec",
    "wall_time",
    "machine",
    "sweep",
]
UNFINISHED = (None, "running", "interrupted")
METRICS = [
    "iteration",
    "time",
    "train_loss",
    "train_accuracy",
    "test_loss",
    "test_accuracy",
    "test_perplexity",
    "direction_norm",
    "update_norm",
    "w_spectral_norm",
]
# columns that summarize() and the figures add: neither configuration nor raw metrics
DERIVED = ["last_iteration", "T", "family", "solved", "diverged", "task"]
DERIVED_PREFIXES = ("cos_", "auc_", "final_", "best_")


class Unreadable(Exception):
    """A job dir that cannot be read (yet): the message says why."""


class UsageError(ValueError):
    """A wrong argument (path, key, filter): the message names it and what is accepted."""


class DataError(ValueError):
    """Nothing usable to read (no runs, a malformed table): the message says what is missing."""


# ----------------------------------------------------------------------------- reading one job


def find_jobs(root: str | Path) -> list[Path]:
    """Every dir below `root` (itself included) holding a `.hydra/` dir, in natural order."""
    return [job for job in find_job_dirs(root) if (job / ".hydra").is_dir()]


def read_config(job: Path) -> dict:
    """The job's config, resolved where possible, flattened with dotted keys."""
    path = job / ".hydra" / "config.yaml"
    if not path.exists():
        raise Unreadable("no .hydra/config.yaml")
    try:
        cfg = OmegaConf.create(_load_yaml(path))
    except Exception as e:
        raise Unreadable(f"unparsable config.yaml ({e.__class__.__name__})") from e
    if not cfg:
        raise Unreadable("empty config.yaml")
    try:
        return {k: _scalar(v) for k, v in _flatten(OmegaConf.to_container(cfg, resolve=True))}
    except Exception:  # unknown resolver (${now:...}), unset ${oc.env:...}: resolve key by key
        return {k: _resolve(cfg, k, v) for k, v in _flatten(OmegaConf.to_container(cfg))}


def _load_yaml(path: Path):
    """A yaml file as plain Python objects (with the fast C loader when available)."""
    with open(path) as f:
        return yaml.load(f, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))


def _flatten(tree: dict, prefix: str = ""):
    """(dotted key, value) for every leaf of a nested dict."""
    for key, value in tree.items():
        if isinstance(value, dict):
            yield from _flatten(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


def _resolve(cfg, key: str, raw):
    """The resolved value of `key`; the unresolved one if its resolution fails."""
    try:
        value = OmegaConf.select(cfg, key)
    except Exception:
        return _scalar(raw)
    return _scalar(OmegaConf.to_container(value) if OmegaConf.is_config(value) else value)


def _scalar(value):
    """A table cell: lists (and empty dicts) as their string."""
    return str(value) if isinstance(value, (list, dict)) else value


def read_choices(job: Path, config: dict) -> dict:
    """The chosen option of each config group: `hydra.runtime.choices`, else `<group>.name`."""
    choices = {}
    path = job / ".hydra" / "hydra.yaml"
    if path.exists():
        try:
            choices = dict(_load_yaml(path)["hydra"]["runtime"]["choices"])
        except Exception:
            choices = {}
    return {group: choices.get(group, config.get(f"{group}.name")) for group in GROUPS}


def _workers(job: Path, cores) -> int | None:
    """How many jobs the launcher ran at once (`hydra.launcher.n_jobs`; -1: one per core)."""
    path = job / ".hydra" / "hydra.yaml"
    try:
        n_jobs = int(_load_yaml(path)["hydra"]["launcher"]["n_jobs"])
    except Exception:
        return None
    return (cores or None) if n_jobs < 0 else n_jobs


def machine_text(job: Path, summary: dict) -> str | None:
    """'Intel Xeon, 2 cores, 1 thread per job, 2 jobs at once, load 4.4 at start' from the
    run's provenance and launcher (what its training times depend on), None if unrecorded."""
    prov = summary.get("provenance") or {}
    info, device = prov.get("machine") or {}, prov.get("device") or {}
    if not info and not device:
        return None
    parts = [str(info.get("cpu") or device.get("name") or "?")]
    if info.get("cores"):
        parts.append(f"{info['cores']} cores")
    if device.get("threads"):
        parts.append(f"{device['threads']} thread{'s' if device['threads'] != 1 else ''} per job")
    workers = _workers(job, info.get("cores"))
    if workers:
        parts.append(f"{workers} jobs at once")
    if info.get("load_1min") is not None:
        parts.append(f"load {info['load_1min']:g} at start")
    return ", ".join(parts)


def sweep_name(summary: dict) -> str | None:
    """The `sweep=NAME` the run was launched with (its provenance command), None if none."""
    prov = summary.get("provenance") or {}
    for arg in [*(prov.get("command") or []), *(prov.get("overrides") or [])]:
        if isinstance(arg, str) and arg.startswith("sweep="):
            return arg.split("=", 1)[1]
    return None


def read_summary(job: Path) -> dict:
    """The job's `summary.json`; unfinished (absent, running) or unparsable ones are Unreadable."""
    path = job / "summary.json"
    if not path.exists():
        raise Unreadable("no summary.json (unfinished)")
    if not path.is_file():
        raise Unreadable("summary.json is not a file")
    try:
        summary = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise Unreadable("unparsable summary.json") from e
    except OSError as e:
        raise Unreadable(f"unreadable summary.json ({e.strerror})") from e
    if not isinstance(summary, dict) or summary.get("status") in UNFINISHED:
        state = observed_status(job, summary.get("status") if isinstance(summary, dict) else None)
        raise Unreadable(state if state in ("interrupted", GONE) else "still running")
    return summary


def read_metrics(job: Path, name: str = "metrics.csv") -> pd.DataFrame:
    """A numeric csv of the job (empty if absent, blank cells NaN); Unreadable if truncated."""
    path = job / name
    if not path.exists():
        return pd.DataFrame()
    if not path.is_file():
        raise Unreadable(f"{name} is not a file")
    try:
        with open(path, newline="", encoding="utf-8") as f:
            rows = [row for row in csv.reader(f) if row]
    except UnicodeDecodeError as e:
        raise Unreadable(f"{name} is not UTF-8 text (byte {e.start})") from e
    except OSError as e:
        raise Unreadable(f"unreadable {name} ({e.strerror})") from e
    if not rows:
        return pd.DataFrame()
    header, body = rows[0], rows[1:]
    if any(len(row) != len(header) for row in body):
        raise Unreadable(f"truncated {name}")
    try:
        values = [[float(x) if x.strip() else math.nan for x in row] for row in body]
    except ValueError as e:
        raise Unreadable(f"non-numeric {name}") from e
    frame = pd.DataFrame(values, columns=header, dtype=float)
    if "iteration" in frame:
        if frame["iteration"].isna().any():
            raise Unreadable(f"blank iteration in {name}")
        frame["iteration"] = frame["iteration"].astype(int)
    return frame


def _momentum(config: dict) -> list[str]:
    """The momentum of an SGD step as words: [] without, ["Nesterov 0.9"], ["momentum 0.5"]."""
    momentum = config.get("optimizer.momentum") or 0.0
    if not momentum:
        return []
    kind = "Nesterov" if config.get("optimizer.nesterov") else "momentum"
    return [f"{kind} {momentum:g}"]


def method_label(config: dict) -> str:
    """A readable name of the method: TP, BP (SGD, Nesterov 0.9), BP (Adam), DTP-PI,
    TP (difference, local), ... Only what differs from the paper's TP is named: the options
    the direction class lists in LABELLED, when not at its constructor's default."""
    name = str(config.get("optimizer.name"))
    if name not in DIRECTIONS:
        return name.upper()
    direction = DIRECTIONS[name]
    defaults = inspect.signature(direction).parameters
    words = [str(config.get(f"optimizer.{k}", defaults[k].default)) for k in direction.LABELLED]
    words = [w for w, k in zip(words, direction.LABELLED) if w != defaults[k].default]
    step = str(config.get("optimizer.step", first_step(name)))
    if direction.named_by_step or step != first_step(name):
        words.append(step)
    words = [WORDS.get(w, w) for w in words]
    if step == "sgd":
        words += _momentum(config)
    return f"{direction.label} ({', '.join(words)})" if words else direction.label


def first_step(name: str) -> str:
    """The step of optimizer `name` when its config leaves `step` out: its first choice."""
    return field_spec(OPTIMIZERS[name][1], "step").choices[0]


WORDS = {"sgd": "SGD", "adam": "Adam", "authors": "authors' per-step rule"}  # option values in labels


def read_job(job: Path, root: Path) -> pd.DataFrame:
    """One job as rows (one per evaluation, or one row of NaN metrics if none) of the table."""
    config = read_config(job)
    summary = read_summary(job)
    metrics = read_metrics(job)
    if summary["status"] == "completed" and metrics.empty:
        raise Unreadable("completed without metrics.csv rows")
    info = {
        "job_dir": job.relative_to(root).as_posix(),
        "method": method_label(config),
        **read_choices(job, config),
        "seed": config.get("seed"),
        "status": summary["status"],
        "reason": summary.get("reason"),
        "stop_iteration": summary.get("iteration"),
        "its_per_sec": summary.get("its_per_sec"),
        "wall_time": summary.get("wall_time"),
        "machine": machine_text(job, summary),
        "sweep": sweep_name(summary),
        **config,
    }
    if metrics.empty:
        metrics = pd.DataFrame({"iteration": [np.nan]})
    return pd.concat([pd.DataFrame([info] * len(metrics)), metrics], axis=1)


# ----------------------------------------------------------------------------- the table


def collect(root: str | Path) -> pd.DataFrame:
    """All finished jobs below `root` as one long table: one row per job x evaluation.

    Columns: the ID_COLUMNS (job_dir relative to `root`), the config keys flattened with dots
    (lr, reg, dataset.length, model.hidden, optimizer.targets, ...) and the metrics.
    Unfinished or unreadable job dirs are skipped and listed in a single warning.
    """
    root = Path(root)
    frames, skipped = [], []
    for job in find_jobs(root):
        try:
            frames.append(read_job(job, root))
        except Unreadable as e:
            skipped.append(f"{job} ({e})")
    if skipped:
        warnings.warn(
            f"skipped {len(skipped)} unfinished or unreadable job dirs:\n  " + "\n  ".join(skipped),
            stacklevel=2,
        )
    if not frames:
        return pd.DataFrame(columns=ID_COLUMNS)
    df = pd.concat(frames, ignore_index=True)
    first = [c for c in df.columns if not _is_metric(c)]
    return df[first + [c for c in df.columns if _is_metric(c)]]


def write_results(root: str | Path, out: str | Path | None = None) -> Path:
    """Collect the runs below `root` into `results.csv` (in `root` unless `out` is given).
    Raises UsageError / DataError (writing nothing) when there is nothing to collect."""
    root = check_dir(root)
    out = Path(out) if out is not None else root / "results.csv"
    if out.is_dir() or not out.parent.is_dir():
        raise UsageError(f"--out {out}: expected a csv path in an existing dir")
    df = collect(root)
    if df.empty:
        raise DataError(f"{root}: no finished runs to collect")
    save_text(df.to_csv(index=False), out)  # atomic: a failed write keeps the previous table
    return out


def check_dir(root: str | Path) -> Path:
    """`root` as a Path if it is a dir holding job dirs; UsageError / DataError if not."""
    root = Path(root)
    if not root.exists():
        raise UsageError(f"{root}: no such file or dir (expected a dir of runs or a results.csv)")
    if not root.is_dir():
        raise UsageError(f"{root}: not a dir (expected a dir of runs)")
    if not find_jobs(root):
        raise DataError(f"{root}: no job dirs (dirs holding .hydra/) below it")
    return root


def read_results(path: str | Path) -> pd.DataFrame:
    """A `results.csv` written by `write_results`; DataError if malformed or without rows."""
    try:
        df = pd.read_csv(path, dtype={"job_dir": str})
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: not a readable csv ({str(e).splitlines()[0]})") from e
    missing = [c for c in ("job_dir", "method", "status", "iteration") if c not in df]
    if missing:
        raise DataError(f"{path}: not a results.csv of tpri-collect (no column {', '.join(missing)})")
    if df.empty:
        raise DataError(f"{path}: header only, no runs")
    return numeric(df, [c for c in df.columns if _is_metric(c)], path)


def numeric(df: pd.DataFrame, columns: list[str], source) -> pd.DataFrame:
    """`df` with `columns` as floats; DataError naming `source`, the column and the first
    value that is not a number (blank cells are NaN)."""
    df = df.copy()
    for column in columns:
        if pd.api.types.is_numeric_dtype(df[column]):
            continue
        values = pd.to_numeric(df[column], errors="coerce")
        bad = df[column][values.isna() & df[column].notna()]
        if len(bad):
            raise DataError(f"{source}: column {column} holds {bad.iloc[0]!r}, expected numbers")
        df[column] = values.astype(float)
    return df


def drop_without_metrics(df: pd.DataFrame, source) -> pd.DataFrame:
    """The rows of jobs that logged an evaluation; jobs without one (failed before the first
    evaluation) are named in a warning; DataError if no job logged one."""
    logged = df.groupby("job_dir", sort=False)["iteration"].transform(lambda s: s.notna().any())
    empty = df.loc[~logged.astype(bool), ["job_dir", "status"]].drop_duplicates("job_dir")
    if empty.empty:
        return df
    counts = ", ".join(f"{n} {status}" for status, n in empty["status"].value_counts().items())
    if len(empty) == len(df.drop_duplicates("job_dir")):
        raise DataError(f"{source}: no finished runs with metrics: {counts} jobs without any evaluation")
    names = ", ".join(list(empty["job_dir"])[:8]) + (", ..." if len(empty) > 8 else "")
    warnings.warn(f"left out {len(empty)} jobs without any evaluation ({counts}): {names}", stacklevel=2)
    return df[logged.astype(bool)]


def load(path: str | Path) -> pd.DataFrame:
    """The table of a `results.csv` file, or collected from the runs below a dir; UsageError
    for a missing path, DataError when it holds no finished run."""
    path = Path(path)
    if path.is_file():
        return read_results(path)
    df = collect(check_dir(path))
    if df.empty:
        raise DataError(f"{path}: no finished runs below it")
    return df


def select(df: pd.DataFrame, where: list[str] | None = None) -> pd.DataFrame:
    """The rows matching every `key=value` of `where` (numbers compared as numbers).
    UsageError for a condition without `=`, an unknown key or a non-number for a numeric key;
    DataError if no row matches."""
    for condition in where or []:
        key, sep, value = condition.partition("=")
        if not sep or not key:
            raise UsageError(f"--where {condition!r}: expected KEY=VALUE, e.g. dataset.name=adding")
        if key not in df:
            raise UsageError(
                f"--where {condition}: no column {key!r}; swept keys: {', '.join(swept_keys(df)) or 'none'}"
            )
        column = df[key]
        if pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column):
            try:
                number = float(value)
            except ValueError:
                raise UsageError(f"--where {condition}: {key} holds numbers, got {value!r}") from None
            df = df[np.isclose(column.astype(float), number)]
        else:
            df = df[column.astype(str).str.lower() == value.lower()]
        if df.empty:
            raise DataError(f"--where {' '.join(where)}: no run matches {condition}")
    return df


# ----------------------------------------------------------------------------- summaries


def _is_metric(column: str) -> bool:
    return column in METRICS or column.startswith("cos_")


def config_columns(df: pd.DataFrame) -> list[str]:
    """The columns holding configuration values: constant within a job, not ids, not metrics."""
    candidates = [
        c
        for c in df.columns
        if c not in ID_COLUMNS + METRICS + DERIVED and not c.startswith(DERIVED_PREFIXES)
    ]
    if df.empty or df["job_dir"].is_unique:
        return candidates
    constant = df.groupby("job_dir")[candidates].nunique(dropna=False).max() <= 1
    return [c for c in candidates if constant[c]]


def swept_keys(df: pd.DataFrame) -> list[str]:
    """The configuration columns whose value differs between jobs (the seed is an id, not one)."""
    return [c for c in config_columns(df) if df[c].nunique(dropna=False) > 1]


def family(df: pd.DataFrame) -> pd.Series:
    """The method's family, first word of its label: TP, BP, DTP."""
    return df["method"].str.split().str[0]


def sequence_length(df: pd.DataFrame) -> pd.Series:
    """T per row, as the dataset's Task class computes it from the row's `dataset.*` options
    (pixels / `dataset.size_chunk` for images, else `dataset.length`); NaN when unknown."""
    name = df["dataset.name"] if "dataset.name" in df else df["dataset"]
    columns = [c for c in df.columns if c.startswith("dataset.") and c != "dataset.name"]
    options = df[columns].astype(object).where(df[columns].notna(), None)
    keys = pd.Series(list(zip(name, *(options[c] for c in columns))), index=df.index)
    lengths = {key: _steps(key[0], dict(zip(columns, key[1:]))) for key in set(keys)}
    return keys.map(lengths).astype(float)


def _steps(name, row: dict) -> float:
    """T of one dataset configuration (`row`: its dataset.* options), NaN when unknown."""
    options = {key.removeprefix("dataset."): value for key, value in row.items() if value is not None}
    task = TASKS.get(name)
    try:
        return float(task.steps(options)) if task else float(options.get("length", math.nan))
    except (KeyError, TypeError, ValueError, ZeroDivisionError):
        return math.nan


def area_under_curve(df: pd.DataFrame, metric: str, x: str = "iteration") -> pd.Series:
    """Per job: the trapezoid area under `metric` against `x` over the span of `x`.

    The result is the curve's mean value, comparable between jobs of different lengths.
    A job with a single point gives that value; a NaN in the curve gives NaN.
    """

    def area(job: pd.DataFrame) -> float:
        job = job.dropna(subset=[x]).sort_values(x)
        xs, ys = job[x].to_numpy(float), job[metric].to_numpy(float)
        if len(xs) < 2 or xs[-1] == xs[0]:
            return float(ys.mean()) if len(ys) else math.nan
        return float(np.trapezoid(ys, xs) / (xs[-1] - xs[0]))

    return df.groupby("job_dir", sort=False)[[x, metric]].apply(area).rename(f"auc_{metric}")


def summarize(df: pd.DataFrame, metrics=("train_loss", "test_accuracy")) -> pd.DataFrame:
    """One row per job: ids, configuration, last iteration and, per metric, `auc_<metric>`,
    `final_<metric>` (last evaluation) and `best_<metric>` (max for accuracies, else min)."""
    metrics = [m for m in metrics if m in df]
    keep = [c for c in ID_COLUMNS if c in df] + config_columns(df)
    jobs = df.groupby("job_dir", sort=False)
    table = jobs[keep[1:]].first().assign(last_iteration=jobs["iteration"].max())
    for m in metrics:
        best = jobs[m].max() if "accuracy" in m else jobs[m].min()
        table[f"auc_{m}"] = area_under_curve(df, m)
        table[f"final_{m}"] = jobs[m].last(skipna=False)
        table[f"best_{m}"] = best
    return table.reset_index()


def aggregate_seeds(table: pd.DataFrame, values: list[str], by: list[str] | None = None):
    """Mean, std and count of `values` over seeds, one row per configuration `by`
    (default: the method and every swept key but the seed), columns `<value>_<stat>`."""
    if by is None:
        by = ["method", *swept_keys(table)]
    stats = table.groupby(by, dropna=False)[values].agg(["mean", "std", "count"])
    stats.columns = [f"{value}_{stat}" for value, stat in stats.columns]
    return stats.reset_index()


def best_configs(
    jobs: pd.DataFrame, by: list[str], score: str = "auc_train_loss", higher: bool = False
) -> pd.DataFrame:
    """The jobs of the best configuration per group `by`, seeds pooled.

    Configurations (the swept keys but the seed) are ranked by their mean `score`; those
    where a seed did not complete rank last, as do NaN scores.
    """
    keys = [k for k in swept_keys(jobs) if k not in by]
    stats = (
        jobs.groupby([*by, *keys], dropna=False)
        .agg(
            score=(score, "mean"),
            ok=("status", lambda s: bool((s == "completed").all())),
        )
        .reset_index()
    )
    stats["rank"] = -stats["score"] if higher else stats["score"]
    stats = stats.sort_values(["ok", "rank"], ascending=[False, True], na_position="last")
    best = stats.groupby(by, dropna=False).head(1)[[*by, *keys]]
    return jobs.merge(best, on=[*by, *keys])


def read_gradients(df: pd.DataFrame, root: str | Path, jobs: list[str] | None = None):
    """The `gradients.csv` of `jobs` (default: the first TP and the first BP job that logged
    them), with their `method` and `job_dir`."""
    root = Path(root)
    if jobs is None:
        logged = [j for j in df["job_dir"].unique() if (root / j / "gradients.csv").exists()]
        firsts = df[df["job_dir"].isin(logged)].assign(family=family).drop_duplicates("family")
        jobs = list(firsts.loc[firsts["family"].isin(["TP", "BP"]), "job_dir"])
    methods = df.drop_duplicates("job_dir").set_index("job_dir")["method"]
    frames = []
    for job in (Path(j).as_posix() for j in jobs):
        if job not in methods:
            raise UsageError(
                f"--job {job}: no finished job of that name below {root}; "
                f"jobs: {', '.join(list(methods.index)[:8])}"
            )
        grads = read_metrics(root / job, "gradients.csv")
        frames.append(grads.assign(method=methods[job], job_dir=job))
    if not frames:
        raise DataError(f"{root}: no gradients.csv in its jobs (train with log_gradients=true)")
    return pd.concat(frames, ignore_index=True)
