"""Shared test helpers: compose configs and run the app as a user would."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

from hydra import compose, initialize_config_dir

from tpri.configs.rules import plain_config

ROOT = Path(__file__).resolve().parent.parent
CONF = ROOT / "conf"
# small and fast: temporal order T=20, width 16
TINY = ["dataset.length=20", "model.hidden=16", "dataset.test_size=200", "dataset.eval_size=200"]


def compose_config(overrides=()) -> dict:
    """The resolved config `python train.py <overrides>` would run, as a plain dict."""
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("config", overrides=list(overrides))
    return plain_config(cfg)


def train_cli(*args, cwd=None, check=True, timeout=300) -> subprocess.CompletedProcess:
    """Run `python train.py args...` in a subprocess."""
    env = {**os.environ, "HYDRA_FULL_ERROR": "0", "PYTHONUNBUFFERED": "1"}
    proc = subprocess.run(
        [sys.executable, str(ROOT / "train.py"), *args],
        cwd=cwd or ROOT,
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"train.py {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
    return proc


def read_metrics(path: Path, drop=("time",)) -> list[dict]:
    """metrics.csv rows without the wall-clock column."""
    with open(path) as f:
        return [{k: v for k, v in row.items() if k not in drop} for row in csv.DictReader(f)]


NOBODY = 65534  # the unprivileged user of the environment tests


def as_nobody(argv: list[str], env: dict | None = None, **kwargs) -> subprocess.CompletedProcess:
    """Run `argv` as the unprivileged user nobody, without HOME (root writes anywhere, so
    read-only dirs are tried as nobody), with this checkout importable; needs root and setpriv."""
    base = {k: v for k, v in os.environ.items() if k != "HOME"}  # nobody has no home
    base = {**base, "PYTHONPATH": str(ROOT), **(env or {})}
    drop = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]
    return subprocess.run(drop + argv, env=base, capture_output=True, text=True, timeout=300, **kwargs)


def can_drop_privileges() -> bool:
    import shutil

    return os.geteuid() == 0 and shutil.which("setpriv") is not None
