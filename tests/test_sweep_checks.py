"""Multiruns end to end: every job checked before any starts (through `python train.py` in a
subprocess, basic and joblib launchers: exit 2, no traceback, no job dir), jobs that fail while
running recorded as failed while the others go on (exit 1, listed), invalid Optuna trials
recorded as failed while the study goes on."""

from __future__ import annotations

import json
import os

import pytest
from datafiles import write_cifar, write_idx_dataset, write_ptb
from helpers import CONF, TINY, train_cli
from test_bad_inputs import _corrupt, run_main

from tpri.run.preflight import preflight

QUICK = [*TINY, "max_iter=4", "eval_every=2"]


@pytest.mark.parametrize(
    "args, bad",
    [
        (
            ["-m", "lr=0.1,abc,0.05"],
            "job 1 (lr=abc): lr='abc' is invalid; expected a finite number > 0 (float32)",
        ),
        # in-process twins of these two: tests/test_bad_inputs.py
        pytest.param(
            ["-m", "model.hidden=16,32,0"],
            "job 2 (model.hidden=0): model.hidden=0 is invalid",
            marks=pytest.mark.slow,
        ),
        pytest.param(
            ["-m", "model.hidden=16,32,0", "hydra/launcher=joblib"],
            "job 2 (model.hidden=0): model.hidden=0 is invalid",
            marks=pytest.mark.slow,
        ),
    ],
)
def test_a_sweep_with_one_bad_value_exits_2_before_any_job(args, bad, tmp_path):
    proc = train_cli(
        *[a for a in QUICK if not a.startswith("model.hidden")],
        *args,
        f"hydra.sweep.dir={tmp_path}/sweep",
        check=False,
    )
    assert proc.returncode == 2
    assert bad in proc.stderr and "Traceback" not in proc.stdout + proc.stderr
    assert not (tmp_path / "sweep").exists()


@pytest.mark.slow
def test_every_job_of_every_shipped_sweep_is_valid(monkeypatch, tmp_path):
    monkeypatch.setenv("TPRI_MEMORY_LIMIT", "16e9")  # each job alone on a 16 GB machine:
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0})  # one joblib job at a time
    # the data files the preflight looks for (tiny, in the real formats)
    monkeypatch.setenv("TPRI_DATA", str(tmp_path))
    for name in ("mnist", "fashion_mnist"):
        write_idx_dataset(tmp_path / name)
    write_cifar(tmp_path / "cifar10")
    write_ptb(tmp_path / "ptb")
    for sweep in sorted(p.stem for p in (CONF / "sweep").glob("*.yaml")):
        assert preflight([f"sweep={sweep}"], False, str(CONF)) == [], sweep


def test_a_failing_job_ends_failed_while_the_others_go_on(tmp_path, capsys, monkeypatch):
    write_idx_dataset(tmp_path / "good", n_train=12, n_test=5)
    _corrupt(tmp_path / "bad")
    code, output = run_main(
        [
            "-m",
            "dataset=mnist",
            "dataset.size_chunk=16",
            f"dataset.data_dir={tmp_path}/good,{tmp_path}/bad,{tmp_path}/good",
        ],
        tmp_path,
        capsys,
        monkeypatch,
    )
    assert code == 1 and "Traceback" not in output
    status = {
        p.parent.name: json.loads(p.read_text())["status"]
        for p in (tmp_path / "sweep").glob("*/summary.json")
    }
    assert status == {"0": "completed", "1": "failed", "2": "completed"}
    assert output.strip().splitlines()[-2:] == [
        "1 job(s) failed:",
        f"  [job 1] {tmp_path}/sweep/1: failed: {tmp_path}/bad/t10k-labels-idx1-ubyte.gz: "
        "unreadable gzip data (Not a gzipped file (b'ga'))",
    ]


def test_invalid_optuna_trials_fail_and_the_study_goes_on(tmp_path, capsys, monkeypatch):
    code, output = run_main(
        [
            "sweep=tune_optuna",
            "hydra/launcher=basic",
            "hydra.sweeper.n_trials=4",
            "hydra.sweeper.n_jobs=1",
            "model.hidden=choice(0,8)",
        ],
        tmp_path,
        capsys,
        monkeypatch,
    )
    summaries = [json.loads(p.read_text()) for p in (tmp_path / "sweep").glob("*/summary.json")]
    failed = [line for line in output.splitlines() if line.startswith("  [job ")]
    assert code == 1 and "Traceback" not in output
    assert failed and all("model.hidden=0 is invalid" in line for line in failed)
    assert len(summaries) + len(failed) == 4  # the valid trials trained
    assert all(s["status"] == "completed" for s in summaries)
    assert (tmp_path / "sweep" / "optimization_results.yaml").exists()


def test_two_multiruns_into_one_sweep_dir_list_only_their_own_failed_jobs(tmp_path, monkeypatch):
    from tpri.run.preflight import COMMAND_ID, failed_jobs, record_failed_job

    for command, job in (("first", "[job 0] failed: a"), ("second", "[job 0] failed: b")):
        monkeypatch.setenv(COMMAND_ID, command)
        record_failed_job(str(tmp_path), job + "\n  (two lines)")
    monkeypatch.setenv(COMMAND_ID, "first")
    record_failed_job(str(tmp_path), "[job 1] failed: c")
    assert failed_jobs(str(tmp_path), "first") == ["[job 0] failed: a (two lines)", "[job 1] failed: c"]
    assert failed_jobs(str(tmp_path), "second") == ["[job 0] failed: b (two lines)"]
    assert failed_jobs(str(tmp_path / "none"), "first") == []
