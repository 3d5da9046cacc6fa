"""Measure the peak memory of jobs against tpri.configs.resources' estimate, each job in a fresh process.

    python tests/measure_memory.py            # the table of CASES (minutes)

The measured value is the job's peak resident memory (ru_maxrss) minus the resident memory of
the process once torch and tpri are imported: what the job itself adds, as the estimate counts.
MNIST is replaced by random IDX files of the real sizes (60,000 + 10,000 images)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
TO = ["dataset.length=200", "model.hidden=128", "batch_size=2000", "dataset.test_size=2000"]
MNIST = ["dataset=mnist", "dataset.size_chunk=1", "model.hidden=512", "batch_size=512", "lr=0.1"]
# name -> overrides of the measured job (one or two iterations, evaluated at both ends)
CASES = {
    "TP graph": [*TO, "optimizer=tp"],
    "TP local": [*TO, "optimizer=tp", "optimizer.update=local"],
    "BP (SGD)": [*TO, "optimizer=sgd", "lr=1e-3"],
    "GRU TP": [*TO, "model=gru", "optimizer=tp", "reg=1.0"],
    "GRU BP": [*TO, "model=gru", "optimizer=sgd", "lr=1e-3"],
    "DTP": [*TO, "optimizer=dtp"],
    "long T (T=2000) TP": ["dataset.length=2000", "model.hidden=64", "batch_size=500", "optimizer=tp"],
    "long T (T=2000) BP": [
        "dataset.length=2000",
        "model.hidden=64",
        "batch_size=500",
        "optimizer=sgd",
        "lr=1e-3",
    ],
    "big evaluation": ["dataset.length=100", "model.hidden=256", "dataset.test_size=50000", "batch_size=20"],
    "diagnostics": [*TO, "optimizer=tp", "log_gradients=true", "log_cosine=true"],
    "MNIST winner corner TP": [*MNIST, "optimizer=tp", "reg=1.0"],
    "MNIST winner corner BP": [*MNIST, "optimizer=sgd", "lr=1e-3"],
    # the paper's PTB job (10,000 words, batch 512, T=64, d=256, embedding 1024) on fewer
    # tokens: 536 training and test windows. Its training step (batch 512) sets the peak; an
    # evaluation holds one chunk of 104 windows' predictions (tpri.data.base.eval_chunk)
    "PTB paper job, 600 tokens": ["experiment=ptb", "dataset.n_tokens=600", "dataset.n_test_tokens=600"],
    # the same with 1,035 test windows: 10 chunks instead of 6, the same peak
    "PTB paper job, 1100 test tokens": [
        "experiment=ptb",
        "dataset.n_tokens=600",
        "dataset.n_test_tokens=1100",
    ],
    # 4,936 test windows and batch 16: the evaluation sets the peak. Holding all predictions
    # at once (before evaluation in chunks) it was estimated at 27 GB
    "PTB big evaluation, 5000 test tokens": [
        "experiment=ptb",
        "dataset.n_tokens=600",
        "dataset.n_test_tokens=5000",
        "batch_size=16",
    ],
}

CHILD = r"""
import json, resource, sys, os
import torch
from hydra import compose, initialize_config_dir
import tpri.run
from tpri.configs.rules import plain_config
from tpri.configs.resources import estimate_memory, peak
from tpri.configs.schema import register_configs

register_configs()
with initialize_config_dir(config_dir=sys.argv[1], version_base="1.3"):
    cfg = plain_config(compose("config", overrides=sys.argv[3:]))
page = os.sysconf("SC_PAGE_SIZE")
with open("/proc/self/statm") as f:
    baseline = int(f.read().split()[1]) * page
tpri.run.run(cfg, sys.argv[2])
measured = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - baseline
print(json.dumps({"measured": measured, "estimate": peak(estimate_memory(cfg))}))
"""


def fake_mnist(folder: Path) -> None:
    sys.path.insert(0, str(Path(__file__).parent))
    from datafiles import write_idx_dataset

    if not (folder / "mnist" / "t10k-labels-idx1-ubyte").exists():
        write_idx_dataset(folder / "mnist", n_train=60_000, n_test=10_000, gz=False)


def fake_ptb(folder: Path, n_words: int = 10_000, n_tokens: int = 40_000) -> None:
    """Random text of `n_words` distinct words (<eos>, <unk> included) in both PTB files."""
    if (folder / "ptb" / "ptb.test.txt").exists():
        return
    rng = np.random.default_rng(0)
    words = [f"w{i}" for i in range(n_words - 2)]
    for name in ("ptb.train.txt", "ptb.test.txt"):
        ids = np.concatenate([rng.permutation(len(words)), rng.integers(0, len(words), n_tokens)])
        lines = [" ".join(words[i] for i in ids[k : k + 20]) for k in range(0, len(ids), 20)]
        (folder / "ptb").mkdir(parents=True, exist_ok=True)
        (folder / "ptb" / name).write_text("\n".join(lines) + "\n")


def measure(overrides: list[str], data_dir: Path, timeout: int = 3000) -> dict:
    """{"measured": bytes, "estimate": bytes} of one job of 1 iteration, run in a fresh process."""
    with tempfile.TemporaryDirectory() as out:
        args = ["max_iter=1", "eval_every=1", "checkpoint_every=0", "threads=2", *overrides]
        env = {**os.environ, "TPRI_DATA": str(data_dir), "PYTHONPATH": str(ROOT)}
        proc = subprocess.run(
            [sys.executable, "-c", CHILD, str(ROOT / "conf"), f"{out}/job", *args],
            capture_output=True,
            text=True,
            env=env,
            timeout=timeout,
        )
    if proc.returncode != 0:
        raise RuntimeError(f"{overrides}: {proc.stderr[-2000:]}")
    return json.loads(proc.stdout.splitlines()[-1])


def main(names: list[str]) -> None:
    data_dir = Path(tempfile.gettempdir()) / "tpri-memory-data"
    fake_mnist(data_dir)
    fake_ptb(data_dir)
    print("| configuration | estimate (MB) | measured (MB) | ratio |\n|---|---|---|---|")
    for name in names or CASES:
        m = measure(CASES[name], data_dir)
        ratio = m["estimate"] / m["measured"]
        print(f"| {name} | {m['estimate'] / 1e6:.0f} | {m['measured'] / 1e6:.0f} | {ratio:.2f} |", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
