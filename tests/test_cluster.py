"""Sweeps on real clusters, not mocks (marker `cluster`: `python -m pytest -m cluster`).

SLURM: a single-node cluster brought up on this machine by scripts/slurm_local.sh (Debian's
slurm-wlm, munge, slurmdbd + MariaDB; root), or the one SLURM_CONF points at when it answers.
If the cluster cannot be started, these tests are skipped with the reason; a failure of tpri on
a running cluster fails them. Ray: a local Ray cluster started by the launcher (needs the `ray`
extra). Each comparison is against the same jobs run uninterrupted on this machine.

SLURM delays a requeued job by two minutes before it may start again (its BeginTime); the
tests release requeued jobs at once (`scontrol update StartTime=now`) to keep CI short: what
runs after is what a plain requeue runs.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import ROOT

pytestmark = pytest.mark.cluster

# long enough to be stopped by a two-minute time limit (the signal comes 60 s before it: a job
# gets it once it has trained for a while, not while Python starts)
LONG = [
    "model.hidden=16",
    "dataset.length=20",
    "dataset.test_size=200",
    "dataset.eval_size=200",
    "max_iter=30000",  # ~100 s of training on an idle 2-core machine: well past the 60 s before
    "eval_every=1000",  # the time-limit signal (10,000 iterations took 32 s there: never interrupted)
    "checkpoint_every=1000",
    "threads=1",
]
SHORT = [*LONG[:4], "max_iter=40", "eval_every=20", "threads=1"]
SLURM = ["hydra/launcher=slurm", "hydra.launcher.cpus_per_task=1", "hydra.launcher.mem_gb=1"]
VALUES = ("train_loss", "train_accuracy", "test_loss", "test_accuracy")  # not the timings


# --- the cluster -------------------------------------------------------------------------


def _answers(env: dict) -> bool:
    try:
        out = subprocess.run(["sinfo", "-h", "-o", "%T"], env=env, capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return False
    return out.returncode == 0 and any(s in out.stdout for s in ("idle", "mixed", "allocated"))


@pytest.fixture(scope="session")
def slurm(tmp_path_factory):
    """The environment of a running SLURM cluster (SLURM_CONF set)."""
    if os.environ.get("SLURM_CONF") and _answers(dict(os.environ)):
        yield dict(os.environ)  # a cluster someone else runs: used, not stopped
        return
    folder = tmp_path_factory.mktemp("slurm")
    port = os.environ.get("TPRI_SLURM_PORT", "7017")
    env = {**os.environ, "TPRI_SLURM_DIR": str(folder), "TPRI_SLURM_PORT": port}
    script = ROOT / "scripts" / "slurm_local.sh"
    try:
        up = subprocess.run([str(script), "up"], env=env, capture_output=True, text=True, timeout=900)
    except subprocess.TimeoutExpired:
        up = None
    try:
        if up is None or up.returncode != 0:
            reason = "timed out" if up is None else (up.stderr or up.stdout).strip().splitlines()[-1:]
            pytest.skip(f"the local SLURM cluster did not start (scripts/slurm_local.sh up): {reason}")
        yield {**env, "SLURM_CONF": str(folder / "slurm.conf")}
    finally:
        subprocess.run([str(script), "down"], env=env, capture_output=True, text=True, timeout=300)


def _scontrol(env: dict, *args: str) -> str:
    return subprocess.run(["scontrol", *args], env=env, capture_output=True, text=True, timeout=30).stdout


def _release_requeued(env: dict) -> None:
    """Let requeued jobs start now instead of in two minutes."""
    out = subprocess.run(
        ["squeue", "-h", "-t", "PD", "-o", "%i %r"], env=env, capture_output=True, text=True, timeout=30
    ).stdout
    for line in out.splitlines():
        job, _, reason = line.partition(" ")
        if reason.strip() == "BeginTime":
            _scontrol(env, "update", f"JobId={job}", "StartTime=now")


# --- running and watching ----------------------------------------------------------------


def _train(args, env=None, **kwargs) -> subprocess.Popen:
    env = {**(env or os.environ), "HYDRA_FULL_ERROR": "0", "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [sys.executable, str(ROOT / "train.py"), *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kwargs,
    )


def _summaries(sweep: Path) -> dict[str, dict]:
    found = {}
    for path in sweep.glob("*/summary.json"):
        try:
            found[path.parent.name] = json.loads(path.read_text())
        except (OSError, ValueError):
            pass  # being replaced: read at the next poll
    return found


def _watch(proc: subprocess.Popen, sweep: Path, env: dict, timeout: float, act=None) -> tuple[dict, str]:
    """Poll the job summaries until the command ends: every status each job showed, in order
    (repeats dropped), and the command's stderr. `act(summaries)` runs at each poll."""
    seen: dict[str, list[str]] = {}
    end = time.monotonic() + timeout
    while proc.poll() is None:
        if time.monotonic() > end:
            proc.kill()
            pytest.fail(f"the sweep did not end within {timeout} s; statuses seen: {seen}")
        summaries = _summaries(sweep)
        for job, summary in summaries.items():
            history = seen.setdefault(job, [])
            if not history or history[-1] != summary["status"]:
                history.append(summary["status"])
        if act is not None:
            act(summaries)
        _release_requeued(env)
        time.sleep(0.5)
    for job, summary in _summaries(sweep).items():
        history = seen.setdefault(job, [])
        if not history or history[-1] != summary["status"]:
            history.append(summary["status"])
    return seen, proc.stderr.read()


def _metrics(job_dir: Path) -> list[dict]:
    with open(job_dir / "metrics.csv") as f:
        return [{k: row[k] for k in ("iteration", *VALUES)} for row in csv.DictReader(f)]


@pytest.fixture(scope="session")
def uninterrupted(tmp_path_factory):
    """LONG with seeds 0 and 1, run here without interruption: the reference metrics."""
    sweep = tmp_path_factory.mktemp("uninterrupted")
    joblib = ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"]
    proc = _train([*LONG, *joblib, f"hydra.sweep.dir={sweep}", "-m", "seed=0,1"])
    _, err = proc.communicate(timeout=1800)
    assert proc.returncode == 0, err
    return {job: _metrics(sweep / job) for job in ("0", "1")}


# --- SLURM -------------------------------------------------------------------------------


def test_a_slurm_sweep_runs_each_job_as_an_array_task(slurm, tmp_path):
    local, sweep = tmp_path / "local", tmp_path / "sweep"
    proc = _train([*SHORT, *SLURM, f"hydra.sweep.dir={sweep}", "-m", "seed=0,1"], slurm)
    seen, err = _watch(proc, sweep, slurm, timeout=300)
    assert proc.returncode == 0, err
    reference = _train([*SHORT, f"hydra.sweep.dir={local}", "-m", "seed=0,1"])
    assert reference.wait(timeout=300) == 0
    summaries = _summaries(sweep)
    assert {j: s["status"] for j, s in summaries.items()} == {"0": "completed", "1": "completed"}
    scheduler = [summaries[j]["provenance"]["scheduler"] for j in ("0", "1")]
    assert [s["array_task_id"] for s in scheduler] == ["0", "1"]
    assert scheduler[0]["array_job_id"] == scheduler[1]["array_job_id"]
    assert all(s["cpus_per_task"] == "1" and s["mem_per_node_mb"] == "1024" and s["node"] for s in scheduler)
    assert summaries["0"]["provenance"]["command"][0] == "train.py"  # not submitit's _submit.py
    for job in ("0", "1"):
        assert _metrics(sweep / job) == _metrics(local / job)


def test_a_time_limit_requeues_until_completed_never_failed(slurm, uninterrupted, tmp_path):
    sweep = tmp_path / "sweep"
    limits = ["hydra.launcher.timeout_min=2", "hydra.launcher.signal_delay_s=60"]
    proc = _train([*LONG, *SLURM, *limits, f"hydra.sweep.dir={sweep}", "-m", "seed=0,1"], slurm)
    seen, err = _watch(proc, sweep, slurm, timeout=1500)
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    for job in ("0", "1"):
        assert seen[job][-1] == "completed" and "failed" not in seen[job], seen
        assert "interrupted" in seen[job], seen  # stopped by the limit at least once
        assert _metrics(sweep / job) == uninterrupted[job]
        restarts = _summaries(sweep)[job]["provenance"]["scheduler"].get("restart_count")
        assert restarts is not None and int(restarts) >= 1


def test_scontrol_requeue_interrupts_and_the_job_resumes(slurm, uninterrupted, tmp_path):
    sweep = tmp_path / "sweep"
    requeued = []

    def requeue_once(summaries):
        summary = summaries.get("0")
        if not requeued and summary and summary["status"] == "running" and summary["iteration"] >= 2000:
            _scontrol(slurm, "requeue", summary["provenance"]["scheduler"]["job_id"])
            requeued.append(summary["iteration"])

    proc = _train([*LONG, *SLURM, f"hydra.sweep.dir={sweep}", "-m", "seed=0"], slurm)
    seen, err = _watch(proc, sweep, slurm, timeout=1500, act=requeue_once)
    assert proc.returncode == 0, err
    assert requeued and seen["0"] == ["running", "interrupted", "running", "completed"], seen
    assert _metrics(sweep / "0") == uninterrupted["0"]


def test_scancel_ends_the_sweep_in_one_line(slurm, tmp_path):
    sweep = tmp_path / "sweep"
    cancelled = []

    def cancel_when_running(summaries):
        running = [s for s in summaries.values() if s["status"] == "running" and s["iteration"] >= 1000]
        if not cancelled and len(running) == 2:
            array = running[0]["provenance"]["scheduler"]["array_job_id"]
            subprocess.run(["scancel", array], env=slurm, check=True, timeout=30)
            cancelled.append(array)

    proc = _train([*LONG, *SLURM, f"hydra.sweep.dir={sweep}", "-m", "seed=0,1"], slurm)
    seen, err = _watch(proc, sweep, slurm, timeout=600, act=cancel_when_running)
    assert cancelled
    assert proc.returncode == 1
    assert "Traceback" not in err
    last = err.strip().splitlines()[-1]
    assert last.startswith("sweep stopped: job ") and "CANCELLED" in last and "rerun the same command" in last
    assert {j: s["status"] for j, s in _summaries(sweep).items()} == {"0": "interrupted", "1": "interrupted"}


# --- Ray ---------------------------------------------------------------------------------


@pytest.fixture
def ray_installed():
    pytest.importorskip("ray", reason="Ray is not installed (pip install 'tpri[ray]')")
    if shutil.which("ray") is None:
        pytest.skip("the ray command is not on PATH")


def test_a_local_ray_sweep_matches_joblib(ray_installed, tmp_path):
    ray, local = tmp_path / "ray", tmp_path / "local"
    proc = _train([*SHORT, "hydra/launcher=ray", f"hydra.sweep.dir={ray}", "-m", "seed=0,1"])
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err
    reference = _train([*SHORT, f"hydra.sweep.dir={local}", "-m", "seed=0,1"])
    assert reference.wait(timeout=300) == 0
    for job in ("0", "1"):
        assert json.loads((ray / job / "summary.json").read_text())["status"] == "completed"
        assert _metrics(ray / job) == _metrics(local / job)
