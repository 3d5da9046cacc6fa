"""Write fake Hydra job dirs that follow the run-output contract of `tpri/train.py`.

write_job(tmp_path / "0", overrides={"lr": 0.1, "reg": 10})
write_job(tmp_path / "1", optimizer="sgd", status="diverged", metrics=curve(diverge_at=400))
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

DATASETS = {
    "temporal_order": {"name": "temporal_order", "length": 60, "bits": 1},
    "adding": {"name": "adding", "length": 30},
    "digits": {"name": "digits", "size_chunk": 1},
    "mnist": {"name": "mnist", "size_chunk": 1, "permute": False},
}
OPTIMIZERS = {  # interpolations, as Hydra writes .hydra/config.yaml unresolved
    "tp": {
        "name": "tp",
        "lr": "${lr}",
        "lr_target": "${lr_target}",
        "reg": "${reg}",
        "targets": "linearized",
        "update": "graph",
        "step": "sgd",
        "momentum": 0.0,
        "nesterov": False,
    },
    "sgd": {"name": "sgd", "lr": "${lr}", "momentum": 0.9, "nesterov": True},
    "adam": {"name": "adam", "lr": "${lr}"},
    "dtp": {  # conf/optimizer/dtp.yaml's defaults: the authors' DTP on the synthetic tasks
        "name": "dtp",
        "variant": "authors",
        "lr": "${lr}",
        "lr_target": "${lr_target}",
        "lr_reverse": 1e-3,
        "momentum": 0.9,
        "nesterov": True,
    },
}


def job_config(
    optimizer: str = "tp", dataset: str = "temporal_order", overrides=None, model: str = "rnn"
) -> dict:
    """A job config; `overrides` maps dotted keys (`lr`, `model.hidden`) to values."""
    config = {
        "seed": 0,
        "lr": 0.1,
        "reg": 1.0,
        "lr_target": 0.01,
        "max_iter": 1000,
        "batch_size": 20,
        "eval_every": 200,
        "device": "cpu",
        "threads": 1,
        "checkpoint_every": 0,
        "log_gradients": False,
        "log_cosine": False,
        "dataset": dict(DATASETS[dataset]),
        "model": {"name": model, "hidden": 100, "activation": "tanh"},
        "optimizer": dict(OPTIMIZERS[optimizer]),
    }
    for key, value in (overrides or {}).items():
        *groups, leaf = key.split(".")
        node = config
        for group in groups:
            node = node[group]
        node[leaf] = value
    return config


def curve(
    iterations=range(0, 1001, 200),
    loss=(1.4, 0.2),
    accuracy=(0.25, 0.9),
    diverge_at: int | None = None,
    seconds_per_iter: float = 0.01,
) -> pd.DataFrame:
    """Metrics of a run whose loss and accuracy move linearly from their first to last value;
    from `diverge_at` on the train loss is NaN (and the evaluations stop there)."""
    its = np.array(list(iterations), dtype=float)
    if diverge_at is not None:
        its = its[its <= diverge_at]
    frac = (its - its[0]) / max(float(np.max(list(iterations)) - its[0]), 1.0)
    train_loss = loss[0] + frac * (loss[1] - loss[0])
    test_accuracy = accuracy[0] + frac * (accuracy[1] - accuracy[0])
    frame = pd.DataFrame(
        {
            "iteration": its.astype(int),
            "time": its * seconds_per_iter,
            "train_loss": train_loss,
            "train_accuracy": test_accuracy,
            "test_loss": train_loss,
            "test_accuracy": test_accuracy,
            "update_norm": 1.0 / (1.0 + its),
            "w_spectral_norm": 1.0 + its / 1000,
        }
    )
    if diverge_at is not None:
        frame.loc[frame.index[-1], "train_loss"] = np.nan
    return frame


def gradients(iterations=(0, 200, 400), steps: int = 10, seed: int = 0) -> pd.DataFrame:
    """A `gradients.csv` table: adjoints vanishing backwards in time, constant displacements."""
    rng = np.random.default_rng(seed)
    rows = [
        {
            "iteration": i,
            "step": t,
            "adjoint_norm": 0.5 ** (steps - t) * rng.uniform(0.5, 1),
            "displacement_norm": 1e-2 * rng.uniform(0.5, 1),
        }
        for i in iterations
        for t in range(1, steps + 1)
    ]
    return pd.DataFrame(rows)


def write_job(
    job_dir,
    optimizer: str = "tp",
    dataset: str = "temporal_order",
    overrides=None,
    status: str | None = "completed",
    metrics: pd.DataFrame | None = None,
    grads: pd.DataFrame | None = None,
    model: str = "rnn",
) -> Path:
    """Write one job dir: `.hydra/`, `metrics.csv`, `summary.json` (none if `status` is None)
    and `gradients.csv` if `grads` is given. Returns the dir."""
    job = Path(job_dir)
    overrides = overrides or {}
    config = job_config(optimizer, dataset, overrides, model)
    task = [f"{k}={v}" for k, v in overrides.items()]
    choices = {"dataset": dataset, "model": model, "optimizer": optimizer, "hydra/launcher": "basic"}
    hydra = {
        "hydra": {
            "runtime": {"choices": choices, "output_dir": "${hydra.run.dir}"},
            "overrides": {"task": task},
            "job": {"name": "train"},
        }
    }
    (job / ".hydra").mkdir(parents=True, exist_ok=True)
    for name, content in [("config", config), ("hydra", hydra), ("overrides", task)]:
        (job / ".hydra" / f"{name}.yaml").write_text(yaml.safe_dump(content))
    metrics = curve() if metrics is None else metrics
    metrics.to_csv(job / "metrics.csv", index=False)
    if grads is not None:
        grads.to_csv(job / "gradients.csv", index=False)
    if status is not None:
        last = metrics.iloc[-1].to_dict() if len(metrics) else {}
        summary = {
            "status": status,
            "reason": None if status == "completed" else "loss is nan",
            "iteration": int(last.get("iteration", 0)),
            "final": last,
            "best": last,
            "its_per_sec": 100.0,
            "wall_time": float(last.get("time", 0.0)),
            "version": "0.1.0",
            "provenance": {"git_commit": "0" * 40, "dirty": False},
        }
        (job / "summary.json").write_text(json.dumps(summary))
    return job


def write_multirun(sweep_dir, jobs: list[dict]) -> Path:
    """A multirun: `<sweep_dir>/<num>/` for each kwargs dict of `write_job`, and multirun.yaml."""
    sweep = Path(sweep_dir)
    for num, kwargs in enumerate(jobs):
        write_job(sweep / str(num), **kwargs)
    (sweep / "multirun.yaml").write_text(yaml.safe_dump({"hydra": {"mode": "MULTIRUN"}}))
    return sweep


def write_bench(path, memory: bool = True, methods=("bp", "tp_graph", "tp_local", "plain_rnn")) -> Path:
    """A `scripts/benchmark.py` csv (long format) over T in {30, 60, 120} and d in {32, 100}:
    times proportional to T * d (factor 1, 1.5, 1.2, 0.5 per method), memory to T."""
    factors = {"bp": 1.0, "tp_graph": 1.5, "tp_local": 1.2, "plain_rnn": 0.5}
    rows = [
        dict(
            T=T,
            hidden=d,
            batch=20,
            method=m,
            median_ms=T * d * factors[m] / 1e3,
            ratio_to_bp=factors[m],
            peak_mib=T * factors[m],
            mem_ratio_to_bp=factors[m],
        )
        for T in (30, 60, 120)
        for d in (32, 100)
        for m in methods
    ]
    frame = pd.DataFrame(rows)
    if not memory:
        frame = frame.drop(columns=["peak_mib", "mem_ratio_to_bp"])
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False)
    return path
