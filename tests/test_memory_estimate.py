"""The memory estimate against measured peaks, and a job out of memory: one line, `failed`."""

import json
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from helpers import ROOT, TINY
from measure_memory import CASES, fake_mnist, fake_ptb, measure

from tpri.configs.rules import is_out_of_memory, out_of_memory_hint

ADDRESS_SPACE = 3 * 2**29  # room for torch's imports, not for a 2.5 GB training batch


def _limited():
    resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE, ADDRESS_SPACE))


def test_a_job_out_of_memory_is_failed_with_one_line_naming_what_to_shrink(tmp_path):
    out = tmp_path / "run"
    big = [
        "dataset.length=300",
        "model.hidden=256",
        "batch_size=1600",
        "optimizer=sgd",
        "lr=1e-3",
        "max_iter=1",
    ]
    proc = subprocess.run(
        [sys.executable, str(ROOT / "train.py"), *TINY, *big, f"hydra.run.dir={out}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        preexec_fn=_limited,
    )
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    (line,) = [x for x in proc.stderr.splitlines() if "out of memory" in x]
    assert line.startswith(f"{out}: out of memory; shrink one of batch_size=1600, dataset.length=300")
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "failed" and summary["reason"].startswith("out of memory (")


def test_what_counts_as_out_of_memory():
    assert is_out_of_memory(MemoryError())
    assert is_out_of_memory(RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried"))
    assert not is_out_of_memory(RuntimeError("shape mismatch"))
    cfg = {"batch_size": 8, "dataset": {"length": 9, "test_size": 5}, "model": {"hidden": 7}}
    assert (
        out_of_memory_hint(cfg)
        == "shrink one of batch_size=8, dataset.length=9, model.hidden=7, dataset.test_size=5"
    )


@pytest.mark.slow
@pytest.mark.parametrize("name", list(CASES))
def test_the_estimate_is_within_085_to_2_times_the_measured_peak(name):
    data_dir = Path(tempfile.gettempdir()) / "tpri-memory-data"
    fake_mnist(data_dir)
    fake_ptb(data_dir)
    result = measure(CASES[name], data_dir)
    assert 0.85 <= result["estimate"] / result["measured"] <= 2.0, result
