"""Launcher and sweeper options checked before Hydra launches anything, a sweep over a config
group with a key every option has, an output dir that cannot be created and a download that
cannot reach its mirror: one line each, a non-zero exit, no traceback (through `python
train.py` in a subprocess where that is the user's path)."""

from __future__ import annotations

import importlib.util
import socket
import subprocess
import sys

import pytest
import yaml
from datafiles import write_idx_dataset
from helpers import CONF, ROOT, TINY, train_cli

from tpri.run.preflight import preflight

OPTUNA = importlib.util.find_spec("hydra_plugins.hydra_optuna_sweeper") is not None
needs_optuna = pytest.mark.skipif(not OPTUNA, reason="the Optuna sweeper (tpri[launchers]) is not installed")
QUICK = [*TINY, "max_iter=2", "eval_every=1"]


def _one_line_error(proc: subprocess.CompletedProcess, code: int) -> str:
    assert proc.returncode == code, proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    return lines[0]


def test_joblib_n_jobs_0_is_refused_before_the_sweep(tmp_path):
    proc = train_cli(
        *QUICK, "-m", "seed=0,1", "hydra/launcher=joblib", "hydra.launcher.n_jobs=0",
        f"hydra.sweep.dir={tmp_path}/sweep", check=False,
    )  # fmt: skip
    assert "hydra.launcher.n_jobs=0 is invalid" in _one_line_error(proc, 2)
    assert not (tmp_path / "sweep").exists()


@needs_optuna
@pytest.mark.parametrize(
    "override, line",
    [
        ("hydra.sweeper.n_trials=0", "hydra.sweeper.n_trials=0 is invalid; expected an integer >= 1"),
        ("lr=tag(log, interval(1, 1e-3))", "the interval's low end (1.0) is above its high end (0.001)"),
    ],
)
def test_optuna_options_are_refused_before_the_study(override, line, tmp_path):
    proc = train_cli(*QUICK, "sweep=tune_optuna", override, f"hydra.sweep.dir={tmp_path}/sweep", check=False)
    assert line in _one_line_error(proc, 2)
    assert not (tmp_path / "sweep").exists()


@needs_optuna
def test_an_optuna_interval_in_the_sweepers_params_is_checked():
    quoted = "hydra.sweeper.params.reg='tag(log, interval(1e3, 1e-2))'"
    errors = preflight(["sweep=tune_optuna", quoted], True, str(CONF))
    assert errors == [
        "hydra.sweeper.params.reg=tag(log, interval(1e3, 1e-2)) is invalid; the interval's low end "
        "(1000.0) is above its high end (0.01)"
    ]


@pytest.mark.parametrize(
    "override, hint",
    [
        (
            "hydra.sweeper.params.lr=tag(log, interval(1e-3, 1))",
            "quote the value: \"hydra.sweeper.params.lr='tag",
        ),
        ("hydra.launcher.n_jobs=1,2", "give one value"),
    ],
)
def test_a_sweep_of_hydras_own_keys_is_refused_by_name(override, hint):
    errors = preflight(["sweep=tune_optuna", override], True, str(CONF))
    assert len(errors) == 1 and errors[0].startswith(f"{override}: Hydra's own keys cannot be swept; ")
    assert hint in errors[0]


@needs_optuna
def test_a_study_whose_every_trial_fails_ends_in_one_line(tmp_path):
    proc = train_cli(
        *[a for a in QUICK if not a.startswith("model.hidden")], "sweep=tune_optuna", "hydra/launcher=basic",
        "hydra.sweeper.n_trials=2", "hydra.sweeper.n_jobs=1", "model.hidden=choice(0)",
        f"hydra.sweep.dir={tmp_path}/sweep", check=False,
    )  # fmt: skip
    assert proc.returncode == 1 and "Traceback" not in proc.stdout + proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith(f"sweep {tmp_path}/sweep: no trial of the study completed")
    assert "2 failed; the first: [job 0] Invalid configuration: model.hidden=0 is invalid" in last
    assert f"all in {tmp_path}/sweep/failed_jobs.txt" in last


def test_a_sweep_over_a_group_takes_a_key_every_option_has(tmp_path, monkeypatch):
    monkeypatch.setenv("TPRI_DATA", str(tmp_path / "data"))
    write_idx_dataset(tmp_path / "data" / "fashion_mnist", n_train=12, n_test=5)
    sweep = ["dataset=digits,fashion_mnist", "dataset.size_chunk=16"]
    assert preflight(sweep, True, str(CONF)) == []
    # each job is still checked on its own: 48 divides neither 64 nor 784 pixels
    errors = preflight(["dataset=digits,fashion_mnist", "dataset.size_chunk=48"], True, str(CONF))
    assert [e.split(":")[0] for e in errors] == ["job 0 (dataset=digits)", "job 1 (dataset=fashion_mnist)"]
    shown = train_cli("-m", *sweep, "--cfg", "job").stdout.split("# job ")[1:]
    jobs = [(text.split("\n", 1)[0], yaml.safe_load(text.split("\n", 1)[1])["dataset"]) for text in shown]
    assert [(job, d["name"], d["size_chunk"]) for job, d in jobs] == [
        ("0: dataset=digits dataset.size_chunk=16", "digits", 16),
        ("1: dataset=fashion_mnist dataset.size_chunk=16", "fashion_mnist", 16),
    ]
    proc = train_cli("-m", *sweep, "max_iter=1", "eval_every=1", f"hydra.sweep.dir={tmp_path}/sweep")
    assert "2 completed" in proc.stdout
    for num, name in ((0, "digits"), (1, "fashion_mnist")):
        config = yaml.safe_load((tmp_path / "sweep" / str(num) / ".hydra" / "config.yaml").read_text())
        assert (config["dataset"]["name"], config["dataset"]["size_chunk"]) == (name, 16)


def test_cfg_other_than_job_with_m_is_one_line():
    proc = train_cli(*QUICK, "-m", "seed=0,1", "--cfg", "hydra", check=False)
    line = "--cfg hydra with -m: expected --cfg job (each job's config), or drop -m"
    assert _one_line_error(proc, 2) == line


@pytest.mark.parametrize("multirun", [False, True])
def test_an_output_dir_that_cannot_be_created_is_one_line(multirun, tmp_path):
    key, sweep = ("hydra.sweep.dir", ["-m", "seed=0,1"]) if multirun else ("hydra.run.dir", [])
    proc = train_cli(*QUICK, *sweep, f"{key}=/proc/tpri-x/y", check=False)
    assert "/proc/tpri-x/y" in _one_line_error(proc, 1)


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_a_download_that_cannot_reach_its_mirror_is_one_line(tmp_path):
    folder = tmp_path / "fashion"
    mirror = f"http://127.0.0.1:{_closed_port()}/"
    # train.py with the dataset's mirror pointed at a closed local port
    launch = (
        "import sys; import tpri.data.images as images; "
        "images.IDX_SOURCES['fashion_mnist'] = images.IDX_SOURCES['fashion_mnist']._replace("
        f"mirrors=({mirror!r},)); from tpri.app import main; sys.argv[0] = 'train.py'; main()"
    )
    args = ["dataset=fashion_mnist", "dataset.download=true", f"dataset.data_dir={folder}", "max_iter=1"]
    proc = subprocess.run(
        [sys.executable, "-c", launch, *args, f"hydra.run.dir={tmp_path}/run"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    line = _one_line_error(proc, 1)
    assert f"fashion_mnist: could not download train-images-idx3-ubyte.gz ({mirror}" in line
    assert f"check the network, or place the files in {folder} and set dataset.download=false" in line
    assert not list(folder.glob("*"))  # no partial file
