"""The record is what trained: keys that would be recorded other than they acted are refused,
the library entry takes what `--cfg job` prints, and the summary of a run follows its
checkpoint (stretches, lengths, missing files)."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import yaml
from helpers import ROOT, TINY, compose_config, train_cli

from tpri.configs.rules import ConfigError
from tpri.run import RunDirError, run


@pytest.fixture
def cfg():
    return compose_config([*TINY, "max_iter=40", "eval_every=20"])


def summary(folder) -> dict:
    return json.loads((folder / "summary.json").read_text())


# --- keys recorded other than they act -----------------------------------------------------


@pytest.mark.parametrize("key, value", [("lr", 1e6), ("reg", 1e-3), ("lr_target", 5.0)])
def test_a_group_key_that_follows_a_top_level_key_is_refused_naming_it(cfg, tmp_path, key, value):
    bad = {**cfg, "optimizer": {**cfg["optimizer"], key: value}}
    expected = rf"optimizer\.{key}=.* differs from the top-level {key}=.*set {key}="
    with pytest.raises(ConfigError, match=expected):
        run(bad, tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_the_cli_refuses_a_direct_group_override_and_a_sweep_of_one(tmp_path):
    proc = train_cli(*TINY, "optimizer.lr=1e6", f"hydra.run.dir={tmp_path / 'one'}", check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "set lr=1000000.0 instead" in proc.stderr
    sweep = [*TINY, f"hydra.sweep.dir={tmp_path / 'sweep'}", "-m", "optimizer.reg=1e-3,1e3"]
    proc = train_cli(*sweep, check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "set reg=0.001 instead" in proc.stderr and "set reg=1000.0 instead" in proc.stderr
    assert not (tmp_path / "one").exists() and not (tmp_path / "sweep").exists()


def test_the_top_level_key_is_what_trains_and_what_is_recorded(cfg, tmp_path):
    result = run({**cfg, "lr": 1e6, "optimizer": {**cfg["optimizer"], "lr": 1e6}}, tmp_path)
    assert result["status"] == "diverged" and "lr=1000000.0" in result["reason"]
    assert result["config"]["lr"] == result["config"]["optimizer"]["lr"] == 1e6


def test_tuned_lr_without_a_key_that_takes_it_is_refused(cfg, tmp_path):
    with pytest.raises(ConfigError, match=r"tuned_lr=0\.5 has no effect here"):
        run({**cfg, "tuned_lr": 0.5}, tmp_path / "a")
    proc = train_cli(*TINY, f"hydra.sweep.dir={tmp_path / 's'}", "-m", "tuned_lr=0.5,0.3", check=False)
    assert proc.returncode == 2 and proc.stderr.count("has no effect here") == 2
    # what experiment=winner_bp composes: lr takes tuned_lr's value
    bp = compose_config([*TINY, "optimizer=sgd", "max_iter=10", "eval_every=10", "lr=0.01"])
    assert run({**bp, "tuned_lr": 0.01}, tmp_path / "b")["status"] == "completed"


@pytest.mark.parametrize("override", ["reg=3", "lr_target=0.5"])
def test_a_tp_key_given_to_a_bp_optimizer_is_refused(tmp_path, override):
    proc = train_cli(*TINY, "optimizer=sgd", override, f"hydra.run.dir={tmp_path}", check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert f"{override} has no effect with optimizer=sgd" in proc.stderr


# --- the library entry ----------------------------------------------------------------------


def test_run_accepts_what_cfg_job_prints(tmp_path):
    printed = subprocess.run(
        [sys.executable, str(ROOT / "train.py"), *TINY, "max_iter=20", "eval_every=10", "--cfg", "job"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    cfg = yaml.safe_load(printed)
    assert cfg["optimizer"]["lr"] == "${lr}"  # unresolved, as printed
    result = run(cfg, tmp_path)
    assert result["status"] == "completed"
    record = yaml.safe_load((tmp_path / ".hydra" / "config.yaml").read_text())
    assert record["optimizer"]["lr"] == record["lr"] == 0.1
    assert record["optimizer"]["lr_target"] == 0.01 and record["optimizer"]["reg"] == 10.0


def test_an_unresolvable_interpolation_is_refused_before_writing(cfg, tmp_path):
    bad = {**cfg, "optimizer": {**cfg["optimizer"], "lr": "${nowhere}"}}
    with pytest.raises(ConfigError, match="optimizer.lr"):
        run(bad, tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_numpy_numbers_are_taken_as_the_numbers_they_hold(cfg, tmp_path):
    lr = np.float64(0.05)
    numpy_cfg = {
        **cfg,
        "lr": lr,
        "seed": np.int64(3),
        "optimizer": {**cfg["optimizer"], "lr": lr, "reg": np.float32(2.0)},
        "reg": np.float32(2.0),
    }
    result = run(numpy_cfg, tmp_path)
    assert result["status"] == "completed"
    record = yaml.safe_load((tmp_path / ".hydra" / "config.yaml").read_text())
    assert (record["lr"], record["seed"], record["reg"]) == (0.05, 3, 2.0)


def test_a_numpy_value_the_schema_refuses_writes_nothing(cfg, tmp_path):
    with pytest.raises(ConfigError, match="batch_size"):
        run({**cfg, "batch_size": np.float64(2.5)}, tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_an_empty_output_dir_and_a_missing_config_are_refused(cfg, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(RunDirError, match="output_dir='' is empty"):
        run(cfg, "")
    with pytest.raises(TypeError, match="cfg must be a mapping .* got NoneType"):
        run(None, tmp_path / "run")
    with pytest.raises(TypeError, match="output_dir must be a path"):
        run(cfg, None)
    assert os.listdir(tmp_path) == []


# --- the summary follows the checkpoint ------------------------------------------------------


def _edit_checkpoint(folder, **changes) -> None:
    import torch

    state = torch.load(folder / "checkpoint.pt", weights_only=True)
    for key, value in changes.items():
        if value is None:
            state.pop(key, None)
        else:
            state[key] = value
    torch.save(state, folder / "checkpoint.pt")


def test_edited_metrics_in_a_summary_are_rebuilt_from_the_checkpoint(cfg, tmp_path):
    first = run(cfg, tmp_path)
    edited = {**first, "best": {**first["best"], "test_accuracy": 1.0}, "final": {"test_accuracy": 1.0}}
    (tmp_path / "summary.json").write_text(json.dumps(edited))
    assert run(cfg, tmp_path)["best"] == first["best"]
    assert summary(tmp_path)["best"] == first["best"] and summary(tmp_path)["final"] == first["final"]
    before = (tmp_path / "summary.json").read_bytes()
    run(cfg, tmp_path)  # agrees now: left byte-identical
    assert (tmp_path / "summary.json").read_bytes() == before


def test_a_missing_checkpoint_is_refused_naming_it_and_restart_trains_again(cfg, tmp_path):
    from tpri.run import RunRefused

    run({**cfg, "max_iter": 20}, tmp_path / "run")
    (tmp_path / "run" / "checkpoint.pt").unlink()
    before = {p.name: p.read_bytes() for p in (tmp_path / "run").iterdir() if p.is_file()}
    with pytest.raises(
        RunRefused, match=r"checkpoint\.pt is missing: the run saved it at iteration 20.*restart=true"
    ):
        run(cfg, tmp_path / "run")
    assert {p.name: p.read_bytes() for p in (tmp_path / "run").iterdir() if p.is_file()} == before
    result = run({**cfg, "restart": True}, tmp_path / "run")
    assert (result["status"], result["iteration"], result["resumed_from"]) == ("completed", 40, None)
    clean = run(cfg, tmp_path / "clean")
    assert result["final"] | {"time": 0} == clean["final"] | {"time": 0}


def test_the_cli_names_the_missing_checkpoint_and_the_restart_flag(tmp_path):
    args = [*TINY, "max_iter=20", "eval_every=10", f"hydra.run.dir={tmp_path}"]
    train_cli(*args)
    (tmp_path / "checkpoint.pt").unlink()
    proc = train_cli(*args[:-2], "max_iter=40", "eval_every=10", f"hydra.run.dir={tmp_path}", check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert f"{tmp_path / 'checkpoint.pt'} is missing" in proc.stderr and "restart=true" in proc.stderr


def test_a_stopped_run_rerun_with_a_smaller_max_iter_is_refused(cfg, tmp_path):
    from tpri.run import RunRefused

    run(cfg, tmp_path)  # 40 iterations; made to look interrupted there
    _edit_checkpoint(tmp_path, status="interrupted")
    (tmp_path / "summary.json").write_text(json.dumps({**summary(tmp_path), "status": "interrupted"}))
    with pytest.raises(RunRefused, match=r"stopped at iteration 40 .* beyond max_iter=30.*max_iter >= 40"):
        run({**cfg, "max_iter": 30}, tmp_path)
    result = run({**cfg, "max_iter": 60}, tmp_path)
    assert (result["status"], result["iteration"]) == ("completed", 60)


def test_provenance_covers_every_stretch_of_a_resumed_run(cfg, tmp_path, monkeypatch):
    from tpri.run import provenance

    monkeypatch.setattr(provenance, "git_state", lambda: {"commit": "aaa", "dirty": True})
    run({**cfg, "max_iter": 20}, tmp_path)
    monkeypatch.setattr(provenance, "git_state", lambda: {"commit": "bbb", "dirty": False})
    result = run(cfg, tmp_path)
    stretches = result["provenance"]["stretches"]
    assert [(s["from_iteration"], s["to_iteration"]) for s in stretches] == [(0, 20), (20, 40)]
    assert [s["git"] for s in stretches] == [
        {"commit": "aaa", "dirty": True},
        {"commit": "bbb", "dirty": False},
    ]
    assert result["provenance"]["git"] == {"commit": ["aaa", "bbb"], "dirty": True}
    assert summary(tmp_path)["provenance"]["git"]["dirty"] is True


def test_an_old_layout_checkpoint_resumes_and_keeps_its_rows(cfg, tmp_path):
    run({**cfg, "max_iter": 20}, tmp_path / "old")
    rows = (tmp_path / "old" / "metrics.csv").read_text()
    _edit_checkpoint(tmp_path / "old", direction=None, best=None, stretches=None)  # as tpri 0.1.0 wrote it
    result = run(cfg, tmp_path / "old")
    assert (result["status"], result["resumed_from"]) == ("completed", 20)
    assert (tmp_path / "old" / "metrics.csv").read_text().startswith(rows)
    assert result["provenance"]["stretches"][0]["git"] is None  # unknown: not claimed
    assert result["provenance"]["git"]["dirty"] is None
