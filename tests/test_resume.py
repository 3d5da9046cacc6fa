"""Long runs survive: checkpoints, resume after SIGKILL, skip-finished sweeps, determinism."""

import json
import os
import signal
import subprocess
import sys
import time

from helpers import ROOT, TINY, compose_config, read_metrics, train_cli

from tpri.run import run


def test_sigkill_then_rerun_resumes_and_matches_an_uninterrupted_run(tmp_path):
    args = [*TINY, "max_iter=1500", "eval_every=100", "checkpoint_every=200", "threads=1"]
    killed, clean = tmp_path / "killed", tmp_path / "clean"
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "train.py"), *args, f"hydra.run.dir={killed}"],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 120
    while not (killed / "checkpoint.pt").exists() and time.time() < deadline:
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert json.loads((killed / "summary.json").read_text())["status"] == "running"

    train_cli(*args, f"hydra.run.dir={killed}")
    summary = json.loads((killed / "summary.json").read_text())
    assert summary["status"] == "completed"
    assert 0 < summary["resumed_from"] < 1500  # resumed, not restarted
    assert f"from iteration {summary['resumed_from']}" in (killed / "train.log").read_text()

    train_cli(*args, f"hydra.run.dir={clean}")
    assert read_metrics(killed / "metrics.csv") == read_metrics(clean / "metrics.csv")


def test_relaunched_sweep_runs_only_the_unfinished_job(tmp_path):
    sweep = [
        *TINY,
        "optimizer=sgd",
        "eval_every=50",
        "checkpoint_every=100",
        f"hydra.sweep.dir={tmp_path}",
        "-m",
        "lr=0.01,1000,0.02",
    ]
    train_cli(*sweep, "max_iter=300")
    statuses = [json.loads((tmp_path / j / "summary.json").read_text())["status"] for j in "012"]
    assert statuses == ["completed", "diverged", "completed"]
    # job 2 becomes half-done: its state at iteration 100, as a kill would have left it
    train_cli(
        *TINY,
        "optimizer=sgd",
        "eval_every=50",
        "checkpoint_every=100",
        "lr=0.02",
        "max_iter=100",
        f"hydra.run.dir={tmp_path / 'half'}",
    )
    for name in ("checkpoint.pt", "metrics.csv"):
        os.replace(tmp_path / "half" / name, tmp_path / "2" / name)
    summary = json.loads((tmp_path / "2" / "summary.json").read_text())
    (tmp_path / "2" / "summary.json").write_text(json.dumps({**summary, "status": "running"}))
    before = {j: (tmp_path / j / "metrics.csv").stat().st_mtime_ns for j in "01"}
    logs = {j: (tmp_path / j / "train.log").read_text() for j in "01"}

    proc = train_cli(*sweep, "max_iter=300")
    assert {j: (tmp_path / j / "metrics.csv").stat().st_mtime_ns for j in "01"} == before
    resumed = json.loads((tmp_path / "2" / "summary.json").read_text())
    assert (resumed["status"], resumed["resumed_from"], resumed["iteration"]) == ("completed", 100, 300)
    # the finished jobs are not launched again (the planned sweeper): their logs are untouched
    assert "2 of 3 jobs are finished in their dirs already" in proc.stdout + proc.stderr
    assert {j: (tmp_path / j / "train.log").read_text() for j in "01"} == logs


def test_extending_max_iter_continues_a_completed_run(tmp_path):
    cfg = compose_config([*TINY, "max_iter=40", "eval_every=20"])
    run(cfg, tmp_path / "short")
    run({**cfg, "max_iter": 80}, tmp_path / "short")
    run({**cfg, "max_iter": 80}, tmp_path / "long")
    assert read_metrics(tmp_path / "short" / "metrics.csv") == read_metrics(tmp_path / "long" / "metrics.csv")


def test_joblib_launcher_gives_the_same_metrics_for_any_n_jobs(tmp_path):
    for n_jobs in (1, 2):
        train_cli(
            *TINY,
            "max_iter=30",
            "eval_every=10",
            "hydra/launcher=joblib",
            f"hydra.launcher.n_jobs={n_jobs}",
            f"hydra.sweep.dir={tmp_path / str(n_jobs)}",
            "-m",
            "seed=0,1",
        )
    for job in "01":
        assert read_metrics(tmp_path / "1" / job / "metrics.csv") == read_metrics(
            tmp_path / "2" / job / "metrics.csv"
        )
    assert read_metrics(tmp_path / "1" / "0" / "metrics.csv") != read_metrics(
        tmp_path / "1" / "1" / "metrics.csv"
    )  # seeds differ
