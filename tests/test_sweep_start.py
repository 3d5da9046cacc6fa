"""A sweep starts at once and fails fast: its jobs are composed once (the preflight's pass; the
planned sweeper does not compose them again before launching), finished jobs are not launched
again, and a dataset whose files are missing refuses the whole sweep in one line."""

from __future__ import annotations

import json
import sys

import pytest
from datafiles import write_idx_dataset
from hydra._internal.config_loader_impl import ConfigLoaderImpl

from tpri.app import main

QUICK = ["dataset.length=10", "model.hidden=4", "dataset.test_size=50", "dataset.eval_size=50"]
QUICK += ["max_iter=4", "eval_every=2"]


def run_main(args, monkeypatch, capsys) -> tuple[int, str]:
    monkeypatch.setattr(sys, "argv", ["train.py", *args])
    try:
        main()
        code = 0
    except SystemExit as end:
        code = end.code
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def count_compositions(monkeypatch) -> list:
    calls = []
    original = ConfigLoaderImpl.load_sweep_config

    def counted(self, master_config, sweep_overrides):
        calls.append(list(sweep_overrides))
        return original(self, master_config, sweep_overrides)

    monkeypatch.setattr(ConfigLoaderImpl, "load_sweep_config", counted)
    return calls


@pytest.mark.parametrize("sweeper, per_job", [([], 1), (["hydra/sweeper=basic"], 2)])
def test_each_job_is_composed_once_after_the_preflight(sweeper, per_job, tmp_path, monkeypatch, capsys):
    calls = count_compositions(monkeypatch)
    args = [*QUICK, f"hydra.sweep.dir={tmp_path}/sweep", *sweeper, "-m", "seed=0,1,2"]
    code, output = run_main(args, monkeypatch, capsys)
    assert code == 0, output
    assert len(calls) == 3 * per_job  # Hydra's basic sweeper composes each job twice
    assert len(list((tmp_path / "sweep").glob("*/summary.json"))) == 3


def test_finished_jobs_are_not_launched_again(tmp_path, monkeypatch, capsys):
    sweep = tmp_path / "sweep"
    code, _ = run_main([*QUICK, f"hydra.sweep.dir={sweep}", "-m", "seed=0,1"], monkeypatch, capsys)
    assert code == 0
    before = {p.parent.name: p.read_text() for p in sweep.glob("*/summary.json")}
    calls = count_compositions(monkeypatch)
    code, output = run_main([*QUICK, f"hydra.sweep.dir={sweep}", "-m", "seed=0,1,2"], monkeypatch, capsys)
    assert code == 0, output
    assert "2 of 3 jobs are finished in their dirs already: not launched again" in output
    assert [c[-1] for c in calls] == ["hydra.sweep.subdir=2"]  # only job 2 was launched, into 2/
    assert {p.parent.name: p.read_text() for p in sweep.glob("[01]/summary.json")} == before
    summary = json.loads((sweep / "2" / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["config"]["seed"] == 2
    assert "[job 2] completed" in output
    code, output = run_main([*QUICK, f"hydra.sweep.dir={sweep}", "-m", "seed=0,1,2"], monkeypatch, capsys)
    assert code == 0 and "3 of 3 jobs are finished" in output and "[job" not in output


def test_missing_data_files_refuse_the_whole_sweep_in_one_line(tmp_path, monkeypatch, capsys):
    write_idx_dataset(tmp_path / "good", n_train=12, n_test=5)
    args = [
        "dataset=mnist",
        "dataset.size_chunk=16",
        "max_iter=2",
        f"hydra.sweep.dir={tmp_path}/sweep",
        "-m",
        f"dataset.data_dir={tmp_path}/good,{tmp_path}/absent",
        "seed=0,1,2",
    ]
    code, output = run_main(args, monkeypatch, capsys)
    assert code == 2 and "Traceback" not in output
    assert output.strip().splitlines() == [
        f"Invalid configuration: dataset: mnist: missing train-images-idx3-ubyte.gz (or "
        f"train-images-idx3-ubyte), train-labels-idx1-ubyte.gz (or train-labels-idx1-ubyte), "
        f"t10k-images-idx3-ubyte.gz (or t10k-images-idx3-ubyte), t10k-labels-idx1-ubyte.gz (or "
        f"t10k-labels-idx1-ubyte) in {tmp_path}/absent. Put the files there (or point "
        "dataset.data_dir at the folder holding them), or set dataset.download=true to fetch them "
        "from https://ossci-datasets.s3.amazonaws.com/mnist/ or https://storage.googleapis.com/cvdf-datasets/mnist/"
    ]
    assert not (tmp_path / "sweep").exists()
