"""A researcher's day: the run dir printed first, resuming a killed run as told, runs started
in the same second, dead runs reported as such, dry runs, the status table."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import ROOT, TINY, train_cli
from hydra.errors import MissingConfigException

from tpri.run.preflight import one_line
from tpri.run.rundir import GONE, LOCK, observed_status
from tpri.run.status import main as status_main

ENV = {**os.environ, "HYDRA_FULL_ERROR": "0", "PYTHONUNBUFFERED": "1"}


def start(*args, cwd: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(ROOT / "train.py"), *args],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=ENV,
    )


def wait_for(predicate, timeout: float = 120.0) -> None:
    end = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > end:
            raise AssertionError("timed out")
        time.sleep(0.2)


def summary_of(job: Path) -> dict:
    try:
        return json.loads((job / "summary.json").read_text())
    except (OSError, ValueError):
        return {}


def test_a_sigkilled_default_run_is_shown_gone_and_resumes_with_the_printed_command(tmp_path, capsys):
    proc = start(*TINY, "max_iter=100000", "eval_every=20", "checkpoint_every=20", cwd=tmp_path)
    first = proc.stdout.readline()
    assert first.startswith("run dir: outputs/runs/"), first
    run_dir = tmp_path / first.split()[2]
    command = first.split("resume: ", 1)[1].rstrip(")\n")
    assert command == f"python {ROOT / 'train.py'} --resume {first.split()[2]}"
    assert (tmp_path / "outputs" / "latest").resolve() == run_dir.resolve()
    wait_for(lambda: (run_dir / "checkpoint.pt").exists() and summary_of(run_dir).get("iteration", 0) >= 40)
    proc.kill()  # SIGKILL: no handler runs, the summary still says running
    proc.communicate()
    assert summary_of(run_dir)["status"] == "running" and (run_dir / LOCK).exists()
    assert observed_status(run_dir, "running") == GONE

    assert status_main([str(tmp_path / "outputs")]) == 0
    table = capsys.readouterr().out
    assert f"runs/{run_dir.parent.name}/{run_dir.name}  {GONE}" in table
    assert "running" not in table.replace(GONE, "")
    with pytest.warns(UserWarning, match=r"interrupted \(process gone\)"):
        from tpri.analysis.collect import collect

        collect(tmp_path / "outputs")

    # the printed command, with a smaller budget so that the test ends (beyond the iteration the
    # killed run reached: an idle machine gets further than 40 before the kill lands)
    target = summary_of(run_dir)["iteration"] + 60
    resumed = subprocess.run(
        [sys.executable, *shlex.split(command)[1:], f"max_iter={target}"],  # python: this venv's
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=ENV,
        timeout=300,
    )
    assert resumed.returncode == 0, resumed.stderr
    end = summary_of(run_dir)
    assert end["status"] == "completed" and end["iteration"] == target and end["resumed_from"] >= 20
    assert "resuming" in resumed.stdout and not (run_dir / LOCK).exists()
    assert len(list((tmp_path / "outputs" / "runs").glob("*/*"))) == 1  # no second run dir


def test_two_runs_started_in_the_same_second_both_complete(tmp_path):
    procs = [start(*TINY, f"seed={s}", "max_iter=20", "eval_every=10", cwd=tmp_path) for s in (0, 1)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [o[1] for o in outs]
    dirs = {o[0].splitlines()[0].split()[2] for o in outs}
    assert len(dirs) == 2
    for d in dirs:
        assert summary_of(tmp_path / d)["status"] == "completed"


def test_a_dry_run_counts_the_jobs_and_creates_nothing(tmp_path):
    proc = train_cli("sweep=winner", "-m", "--dry-run", cwd=tmp_path)
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("dry run: 504 jobs into outputs/multirun/")
    assert "launcher joblib" in lines[0]
    assert "  model.hidden: 6 values: 16, 32, 64, 128, 256, 512" in lines
    assert any(line.startswith("  time per job: ") for line in lines)
    assert any(line.startswith("  total: ") and "CPU time" in line for line in lines)
    assert list(tmp_path.iterdir()) == []


def test_a_dry_run_of_a_bad_sweep_names_the_bad_jobs(tmp_path):
    proc = train_cli(*TINY, "-m", "lr=0.1,-1", "--dry-run", cwd=tmp_path)
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("dry run: 2 jobs into outputs/multirun/")
    assert "  1 job(s) would be refused now (not in the estimates), e.g.:" in lines
    assert "    job 1 (lr=-1): lr=-1.0 is invalid; expected a finite number > 0 (float32)" in lines
    assert list(tmp_path.iterdir()) == []


def test_resume_of_a_dir_without_a_record_is_one_line(tmp_path):
    proc = train_cli("--resume", str(tmp_path), cwd=tmp_path, check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip() == (
        f"--resume {tmp_path}: no readable {tmp_path}/.hydra/config.yaml; expected a job dir "
        "(holding .hydra/) or a sweep dir (holding multirun.yaml)"
    )


def test_a_running_summary_is_reported_by_its_lock(tmp_path):
    job = tmp_path / "job"
    job.mkdir()
    (job / "summary.json").write_text('{"status": "running", "iteration": 5}')
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    host = os.uname().nodename
    (job / LOCK).write_text(f"{dead.pid} {host}\n")
    assert observed_status(job, "running") == GONE
    (job / LOCK).write_text(f"{os.getpid()} {host}\n")
    assert observed_status(job, "running") == "running"
    (job / LOCK).write_text(f"{dead.pid} another-host\n")
    assert observed_status(job, "running") == "running"  # cannot tell: not claimed dead
    (job / LOCK).unlink()
    assert observed_status(job, "running") == GONE  # a live job always holds its lock
    assert observed_status(job, "completed") == "completed"


def test_a_missing_launcher_plugin_names_the_extra():
    err = MissingConfigException("x", missing_cfg_file="hydra/launcher/joblib", options=["basic"])
    assert one_line(err) == (
        "hydra/launcher/joblib: no such config; accepted for hydra/launcher: ['basic'] "
        "(the joblib, submitit and Optuna plugins come with: pip install 'tpri[launchers]')"
    )


def test_interrupt_message_gives_the_resume_command(tmp_path):
    proc = start(*TINY, "max_iter=100000", "eval_every=20", "hydra.run.dir=run", cwd=tmp_path)
    assert proc.stdout.readline().startswith("run dir: run  (stopped? resume: ")
    wait_for(lambda: summary_of(tmp_path / "run").get("iteration", 0) >= 20)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130
    assert err.strip().splitlines()[-1].endswith(f"; resume: python {ROOT / 'train.py'} --resume run")
