"""Experiment trackers: options are checked before anything starts, and what each tracker records
is read back with its own reader (TensorBoard's EventAccumulator, MlflowClient, the wandb Run)."""

import json
import multiprocessing
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from helpers import compose_config

from tpri.configs.rules import ConfigError
from tpri.run.trackers import flatten, make_trackers

CONFIG = {"seed": 0, "lr": 0.1, "optimizer": {"name": "tp", "reg": 10.0}, "logger": {"tensorboard": {}}}
ROWS = [  # two evaluations, as in metrics.csv
    {"iteration": 0, "time": 0.0, "train_loss": 1.4, "test_accuracy": 0.25},
    {"iteration": 10, "time": 0.5, "train_loss": 0.7, "test_accuracy": 0.75},
]


def _record(trackers, status="completed", rows=ROWS):
    for tracker in trackers:
        tracker.log_params(CONFIG)
        for row in rows:
            tracker.log_metrics(row, step=row["iteration"])
        tracker.close(status)


def test_the_logger_group_selects_several_trackers_with_their_defaults():
    cfg = compose_config(["logger=[tensorboard,mlflow]"])
    assert cfg["logger"]["tensorboard"] == {"save_dir": None}
    assert cfg["logger"]["mlflow"]["tracking_uri"] == "sqlite:///outputs/mlflow.db"
    assert cfg["logger"]["mlflow"]["experiment_name"] == "tpri"
    assert compose_config(["logger=wandb"])["logger"]["wandb"]["mode"] == "offline"
    assert compose_config().get("logger") is None  # none by default


@pytest.mark.parametrize(
    "logger, message",
    [
        ({"neptune": {}}, "logger.neptune: unknown tracker; accepted: tensorboard, mlflow, wandb"),
        ({"mlflow": {"uri": "x"}}, "logger.mlflow.uri: unknown option; accepted: tracking_uri,"),
        ({"wandb": {"mode": "cloud"}}, "logger.wandb.mode='cloud' is invalid; expected one of"),
        ({"tensorboard": {"save_dir": 3}}, "logger.tensorboard.save_dir=3 is invalid; expected a path"),
        ({"tensorboard": {}, "mlflow": {"tags": ["a"]}}, "logger.mlflow.tags=['a'] is invalid"),
        (["tensorboard"], "logger=['tensorboard'] is invalid; expected null or a mapping"),
    ],
)
def test_bad_options_name_the_key_and_start_nothing(tmp_path, logger, message):
    with pytest.raises(ConfigError) as err:
        make_trackers(logger, tmp_path, "run")
    assert message in str(err.value) and "\n" not in str(err.value)
    assert list(tmp_path.iterdir()) == []


def test_a_missing_package_names_the_extra(tmp_path, monkeypatch):
    for name in [m for m in sys.modules if m == "mlflow" or m.startswith("mlflow.")] + ["mlflow"]:
        monkeypatch.setitem(sys.modules, name, None)  # import mlflow fails as if not installed
    with pytest.raises(ConfigError, match=r"logger\.mlflow: .*pip install 'tpri\[trackers\]'"):
        make_trackers({"mlflow": {}}, tmp_path, "run")


def test_no_logger_no_trackers(tmp_path):
    assert make_trackers(None, tmp_path, "run") == []


def test_flatten_joins_nested_keys_with_dots():
    assert flatten(CONFIG) == {
        "seed": 0,
        "lr": 0.1,
        "optimizer.name": "tp",
        "optimizer.reg": 10.0,
        "logger.tensorboard": {},
    }


def test_tensorboard_records_scalars_and_the_config_under_the_run_dir(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    (tracker,) = make_trackers({"tensorboard": None}, tmp_path, "run")
    _record([tracker])
    events = EventAccumulator(str(tmp_path / "tensorboard"), size_guidance={"tensors": 0})
    events.Reload()
    assert set(events.Tags()["scalars"]) == {"iteration", "time", "train_loss", "test_accuracy"}
    accuracy = events.Scalars("test_accuracy")
    assert [(e.step, e.value) for e in accuracy] == [(0, 0.25), (10, 0.75)]
    (config,) = events.Tensors("config/text_summary")
    text = config.tensor_proto.string_val[0].decode()
    assert "| optimizer.reg | 10.0 |" in text and "| seed | 0 |" in text
    (status,) = events.Tensors("status/text_summary")
    assert status.tensor_proto.string_val[0].decode() == "completed"


def _mlflow_runs(uri: str, experiment: str = "tpri"):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    experiment_id = client.get_experiment_by_name(experiment).experiment_id
    return client, client.search_runs([experiment_id], order_by=["attributes.run_name"])


def _job(uri: str, run_dir: str, name: str, start) -> None:
    start.wait()
    (tracker,) = make_trackers({"mlflow": {"tracking_uri": uri}}, run_dir, name)
    rows = [{"iteration": i, "train_loss": 1.0 / (i + 1)} for i in range(20)]
    _record([tracker], rows=rows)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """Two jobs start at once on a store that does not exist yet, as the jobs of a sweep do (creating
    MLflow's tables takes seconds: the other tests work on copies of this store)."""
    import mlflow.tracking  # noqa: F401 - imported once, before the fork

    path = tmp_path_factory.mktemp("mlflow") / "outputs" / "mlflow.db"
    fork = multiprocessing.get_context("fork")
    start = fork.Barrier(2)
    args = [(f"sqlite:///{path}", str(path.parent / f"job{i}"), f"job{i}", start) for i in (0, 1)]
    jobs = [fork.Process(target=_job, args=a) for a in args]
    for job in jobs:
        job.start()
    for job in jobs:
        job.join(timeout=120)
    return path, [job.exitcode for job in jobs]


def test_parallel_jobs_log_to_one_new_sqlite_store(store):
    path, exitcodes = store
    assert exitcodes == [0, 0]
    client, runs = _mlflow_runs(f"sqlite:///{path}")
    assert [r.info.run_name for r in runs] == ["job0", "job1"]
    for run in runs:
        assert run.info.status == "FINISHED"
        history = client.get_metric_history(run.info.run_id, "train_loss")
        assert sorted(m.step for m in history) == list(range(20))


@pytest.fixture
def in_a_copy_of_the_store(store, tmp_path, monkeypatch):
    """cwd = tmp_path, holding outputs/mlflow.db (the default tracking URI) copied from `store`."""
    (tmp_path / "outputs").mkdir()
    shutil.copy(store[0], tmp_path / "outputs" / "mlflow.db")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_mlflow_records_params_metrics_and_tags_in_the_default_store(in_a_copy_of_the_store):
    run_dir = in_a_copy_of_the_store / "run"
    (tracker,) = make_trackers({"mlflow": {"experiment_name": "new", "tags": {"sweep": "a"}}}, run_dir, "x")
    _record([tracker], status="diverged")
    client, (run,) = _mlflow_runs("sqlite:///outputs/mlflow.db", "new")
    assert run.info.run_name == "x" and run.info.status == "FINISHED"
    assert run.data.tags["status"] == "diverged" and run.data.tags["sweep"] == "a"
    assert run.data.tags["run_dir"] == str(run_dir)
    assert run.data.params["optimizer.reg"] == "10.0" and run.data.params["seed"] == "0"
    history = client.get_metric_history(run.info.run_id, "test_accuracy")
    assert sorted((m.step, m.value) for m in history) == [(0, 0.25), (10, 0.75)]


def test_mlflow_closes_on_every_status(in_a_copy_of_the_store):
    expected = {"completed": "FINISHED", "diverged": "FINISHED", "failed": "FAILED", "interrupted": "KILLED"}
    for status in expected:
        (tracker,) = make_trackers(
            {"mlflow": {"experiment_name": "statuses"}}, in_a_copy_of_the_store / status, status
        )
        tracker.close(status)
    _, runs = _mlflow_runs("sqlite:///outputs/mlflow.db", "statuses")
    assert {r.info.run_name: r.info.status for r in runs} == expected


def test_mlflow_creates_the_folder_of_a_new_default_store(tmp_path, monkeypatch):
    from tpri.run.trackers import _sqlite_lock

    monkeypatch.chdir(tmp_path)
    with _sqlite_lock("sqlite:///outputs/mlflow.db"):
        assert (tmp_path / "outputs").is_dir()


def test_wandb_runs_offline_in_the_run_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_SILENT", "true")
    (tracker,) = make_trackers({"wandb": {}}, tmp_path, "run")
    tracker = tracker.tracker  # the wandb tracker inside its guard
    assert tracker.run.offline and tracker.run.name == "run"
    tracker.log_params(CONFIG)
    for row in ROWS:
        tracker.log_metrics(row, step=row["iteration"])
    assert tracker.run.config["optimizer"] == {"name": "tp", "reg": 10.0}
    assert tracker.run.summary["test_accuracy"] == 0.75
    tracker.close("completed")
    (offline,) = (tmp_path / "wandb").glob("offline-run-*")
    assert list(offline.glob("run-*.wandb"))


def test_a_resumed_job_continues_its_wandb_run(tmp_path, monkeypatch):
    """The run's id is kept in trackers.json and reused: both stretches are one W&B run (offline:
    offline-run folders of that one id, which `wandb sync` merges; two stretches in the same
    second get the suffix -1)."""
    monkeypatch.setenv("WANDB_SILENT", "true")
    (first,) = make_trackers({"wandb": {}}, tmp_path, "job")
    first.log_metrics(ROWS[0], step=ROWS[0]["iteration"])
    first.close("interrupted")
    run_id = first.tracker.run.id
    assert json.loads((tmp_path / "trackers.json").read_text())["wandb"] == {"run_id": run_id}
    (second,) = make_trackers({"wandb": {}}, tmp_path, "job")
    assert second.tracker.run.id == run_id
    second.log_metrics(ROWS[1], step=ROWS[1]["iteration"])
    second.close("completed")
    offline = sorted((tmp_path / "wandb").glob("offline-run-*"))
    assert offline and all(f"-{run_id}" in folder.name for folder in offline)
    # another run dir starts its own run
    (other,) = make_trackers({"wandb": {}}, tmp_path / "other", "job")
    assert other.tracker.run.id != run_id
    other.close("completed")


@pytest.mark.parametrize("damage", ["refused id", "directory"])
def test_a_damaged_wandb_id_file_starts_a_new_run(tmp_path, monkeypatch, damage):
    """A kept id W&B refuses starts a new run (and is replaced); trackers.json that cannot be
    written leaves the run going, its id not kept."""
    monkeypatch.setenv("WANDB_SILENT", "true")
    ids = tmp_path / "trackers.json"
    if damage == "refused id":
        ids.write_text('{"wandb": {"run_id": "bad/id:?#"}}')
    else:
        ids.mkdir()
    (tracker,) = make_trackers({"wandb": {}}, tmp_path, "job")
    run_id = tracker.tracker.run.id
    assert run_id != "bad/id:?#"
    tracker.log_metrics(ROWS[0], step=ROWS[0]["iteration"])
    tracker.close("completed")
    assert not tracker.dropped
    if damage == "refused id":
        assert json.loads(ids.read_text())["wandb"] == {"run_id": run_id}


# ---- a tracker never takes training down -----------------------------------------------------------


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _damaged_store(tmp_path, kind: str) -> str:
    if kind == "directory":
        (tmp_path / "store.db").mkdir()
        return f"sqlite:///{tmp_path}/store.db"
    if kind == "corrupt":
        (tmp_path / "store.db").write_bytes(b"not a database\n" * 100)
        return f"sqlite:///{tmp_path}/store.db"
    if kind == "folder store":
        return str(tmp_path / "mlruns")
    return f"http://127.0.0.1:{_free_port()}"  # a server URI with nothing listening


@pytest.mark.parametrize(
    "kind, message",
    [
        ("directory", "store.db is a directory; expected a SQLite file"),
        ("corrupt", "store.db is not a SQLite database"),
        ("folder store", "a folder store is not supported; expected sqlite:///PATH.db"),
        ("nothing listening", "logger.mlflow: cannot start: API request to http://127.0.0.1:"),
    ],
)
def test_an_mlflow_store_that_cannot_be_used_is_one_config_line(tmp_path, kind, message):
    uri = _damaged_store(tmp_path, kind)
    before = time.monotonic()
    with pytest.raises(ConfigError) as err:
        make_trackers({"tensorboard": {}, "mlflow": {"tracking_uri": uri}}, tmp_path / "run", "run")
    assert message in str(err.value) and "\n" not in str(err.value)
    assert time.monotonic() - before < 60  # MLflow's own retries take minutes


def test_a_deleted_experiment_and_a_list_tag_are_config_errors(in_a_copy_of_the_store):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri="sqlite:///outputs/mlflow.db")
    client.delete_experiment(client.create_experiment("gone"))
    with pytest.raises(ConfigError, match="experiment_name=gone: the experiment was deleted from sqlite"):
        make_trackers({"mlflow": {"experiment_name": "gone"}}, in_a_copy_of_the_store / "run", "run")
    with pytest.raises(ConfigError, match=r"tags=\{'a': \[1, 2\]\} is invalid; expected a mapping of tag"):
        make_trackers({"mlflow": {"tags": {"a": [1, 2]}}}, in_a_copy_of_the_store / "run", "run")


def test_a_resumed_job_continues_its_mlflow_run(in_a_copy_of_the_store):
    run_dir = in_a_copy_of_the_store / "run"
    (first,) = make_trackers({"mlflow": {"experiment_name": "resume"}}, run_dir, "job")
    first.log_params({**CONFIG, "max_iter": 10})
    first.log_metrics(ROWS[0], step=0)  # then the process is killed: the run stays RUNNING
    (second,) = make_trackers({"mlflow": {"experiment_name": "resume"}}, run_dir, "job")
    assert second.tracker.run_id == first.tracker.run_id
    second.log_params({**CONFIG, "max_iter": 20})  # a longer max_iter on resume
    second.log_metrics(ROWS[1], step=10)
    second.close("completed")
    assert not second.dropped
    client, (run,) = _mlflow_runs("sqlite:///outputs/mlflow.db", "resume")
    assert run.info.status == "FINISHED"
    assert run.data.params["max_iter"] == "10" and run.data.tags["resumed.max_iter"] == "20"
    history = client.get_metric_history(run.info.run_id, "test_accuracy")
    assert sorted((m.step, m.value) for m in history) == [(0, 0.25), (10, 0.75)]


def test_jobs_sharing_a_tensorboard_save_dir_get_one_folder_each(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    shared = {"tensorboard": {"save_dir": str(tmp_path / "tb")}}
    for job in ("0", "1"):
        (tracker,) = make_trackers(shared, tmp_path / "sweep" / job, f"sweep/{job}")
        _record([tracker], rows=ROWS[int(job) :])
    for job, steps in (("0", [0, 10]), ("1", [10])):
        events = EventAccumulator(str(tmp_path / "tb" / "sweep" / job))
        events.Reload()
        assert [e.step for e in events.Scalars("train_loss")] == steps


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("setpriv"), reason="needs root and setpriv")
def test_a_tensorboard_folder_made_read_only_mid_run_drops_the_tracker_in_one_line():
    """Run as an unprivileged user (root writes anywhere): the folder and its event file become
    read-only between two evaluations."""
    tmp_path = Path(tempfile.mkdtemp(prefix="tpri-nobody-"))  # pytest's own tmp is root's only
    tmp_path.chmod(0o777)
    script = (
        "import logging, os, sys, pathlib\n"
        "logging.basicConfig(format='%(message)s')\n"
        "from tpri.run.trackers import make_trackers\n"
        "run = pathlib.Path(sys.argv[1])\n"
        "(t,) = make_trackers({'tensorboard': {}}, run, 'run')\n"
        "t.log_metrics({'loss': 1.0}, 0)\n"
        "for p in (run / 'tensorboard').iterdir(): p.chmod(0o444)\n"
        "(run / 'tensorboard').chmod(0o555)\n"
        "t.log_metrics({'loss': 0.5}, 1); t.log_metrics({'loss': 0.2}, 2)\n"
        "t.close('completed')\n"
        "print('dropped' if t.dropped else 'kept')\n"
    )
    proc = subprocess.run(
        ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable, "-c", script]
        + [str(tmp_path / "run")],
        capture_output=True,
        text=True,
        env={**os.environ, "HOME": str(tmp_path), "PYTHONPATH": str(Path(__file__).parents[1])},
        timeout=120,
    )
    shutil.rmtree(tmp_path)
    assert proc.returncode == 0 and proc.stdout == "dropped\n", proc.stderr
    (line,) = proc.stderr.splitlines()
    assert line.startswith("logger.tensorboard: dropped after a failure (") and "Permission denied" in line


@pytest.mark.slow
def test_an_mlflow_store_locked_mid_run_drops_the_tracker_and_its_run_is_still_closed(store, tmp_path):
    """A SQLite store held by another process's write transaction for 40 s (MLflow gives up
    after about 20 s): one line, the tracker dropped, its run FINISHED once the lock is gone."""
    import sqlite3

    db = tmp_path / "mlflow.db"
    shutil.copy(store[0], db)
    (tracker,) = make_trackers({"mlflow": {"tracking_uri": f"sqlite:///{db}"}}, tmp_path / "run", "x")
    tracker.log_metrics(ROWS[0], step=0)
    locker = sqlite3.connect(db, isolation_level=None)
    locker.execute("BEGIN EXCLUSIVE")
    tracker.log_metrics(ROWS[1], step=10)
    assert tracker.dropped
    time.sleep(max(0.0, 40 - 20))
    locker.execute("COMMIT")
    locker.close()
    tracker.close("completed")
    client, runs = _mlflow_runs(f"sqlite:///{db}")
    (run,) = [r for r in runs if r.info.run_id == tracker.tracker.run_id]
    assert run.info.status == "FINISHED"
    assert [m.step for m in client.get_metric_history(run.info.run_id, "test_accuracy")] == [0]
