"""A parallel sweep whose worker is killed ends with one line and honest statuses."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from helpers import ROOT, TINY, compose_config

from tpri.run import run
from tpri.run.rundir import RunDir


def _status(job) -> tuple[str, str | None]:
    summary = json.loads((job / "summary.json").read_text())
    return summary["status"], summary["reason"]


def test_a_job_left_running_by_a_dead_process_is_recorded_failed(tmp_path):
    cfg = compose_config([*TINY, "max_iter=20", "eval_every=10"])
    run(cfg, tmp_path / "done")
    for name in ("lost", "held"):
        run(cfg, tmp_path / name)
        summary = json.loads((tmp_path / name / "summary.json").read_text())
        (tmp_path / name / "summary.json").write_text(json.dumps({**summary, "status": "running"}))
    with RunDir(tmp_path / "held"):  # a live process holds it: left alone
        marked = {name: RunDir(tmp_path / name).mark_lost("gone") for name in ("done", "lost", "held")}
    assert marked == {"done": False, "lost": True, "held": False}
    assert _status(tmp_path / "lost") == ("failed", "gone")
    assert _status(tmp_path / "held")[0] == "running" and _status(tmp_path / "done")[0] == "completed"


@pytest.mark.slow
def test_a_killed_joblib_worker_ends_the_sweep_with_one_line_and_honest_statuses(tmp_path):
    args = [*TINY, "max_iter=100000", "eval_every=50", "checkpoint_every=200", "hydra/launcher=joblib"]
    args += ["hydra.launcher.n_jobs=2", f"hydra.sweep.dir={tmp_path}", "-m", "seed=0,1"]
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "train.py"), *args],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "HYDRA_FULL_ERROR": "0"},
    )
    deadline = time.time() + 240
    while time.time() < deadline and not all((tmp_path / j / "summary.json").exists() for j in "01"):
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.1)
    worker = int((tmp_path / "1" / "run.lock").read_text().split()[0])
    os.kill(worker, signal.SIGKILL)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 1
    assert "Traceback" not in stderr and len(stderr.strip().splitlines()) == 1, stderr
    assert f"sweep {tmp_path} stopped: a worker process died (SIGKILL" in stderr
    for job in "01":
        status, reason = _status(tmp_path / job)
        assert status in ("failed", "interrupted", "completed"), (job, status)
        assert not (tmp_path / job / "run.lock").exists() or RunDir(tmp_path / job).mark_lost("x") is False
    assert _status(tmp_path / "1") == (
        "failed",
        f"its worker process died (SIGKILL(-9)); resume: python {ROOT / 'train.py'} --resume {tmp_path}",
    )
