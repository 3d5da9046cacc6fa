"""A job run with `logger=[tensorboard,mlflow]` is found by each tracker's own reader, with the
config as params and every evaluation of metrics.csv as metrics."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from helpers import ROOT, TINY, read_metrics, train_cli


def test_a_run_with_tensorboard_and_mlflow_is_read_back_by_their_readers(tmp_path):
    from mlflow.tracking import MlflowClient
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out, uri = tmp_path / "run", f"sqlite:///{tmp_path}/mlflow.db"
    train_cli(
        *TINY,
        "max_iter=40",
        "eval_every=20",
        "logger=[tensorboard,mlflow]",
        f"logger.mlflow.tracking_uri={uri}",
        f"hydra.run.dir={out}",
    )
    rows = read_metrics(out / "metrics.csv", drop=())
    accuracy = [(int(r["iteration"]), float(r["test_accuracy"])) for r in rows]
    assert [i for i, _ in accuracy] == [0, 20, 40]

    events = EventAccumulator(str(out / "tensorboard"))
    events.Reload()
    assert [(e.step, round(e.value, 6)) for e in events.Scalars("test_accuracy")] == [
        (i, round(a, 6)) for i, a in accuracy
    ]

    client = MlflowClient(tracking_uri=uri)
    (run,) = client.search_runs([client.get_experiment_by_name("tpri").experiment_id])
    assert run.info.status == "FINISHED"
    assert run.data.params["optimizer.lr"] == "0.1" and run.data.params["model.hidden"] == "16"
    history = client.get_metric_history(run.info.run_id, "test_accuracy")
    assert [(m.step, round(m.value, 6)) for m in history] == [(i, round(a, 6)) for i, a in accuracy]
    assert json.loads((out / "summary.json").read_text())["status"] == "completed"


def test_a_tracker_that_cannot_start_is_one_config_line_before_training(tmp_path):
    (tmp_path / "store.db").write_bytes(b"not a database\n" * 100)
    out = tmp_path / "run"
    proc = train_cli(
        *TINY,
        "logger=mlflow",
        f"logger.mlflow.tracking_uri=sqlite:///{tmp_path}/store.db",
        f"hydra.run.dir={out}",
        check=False,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"Invalid configuration: logger.mlflow.tracking_uri=sqlite:///{tmp_path}/store.db: "
        f"{tmp_path}/store.db is not a SQLite database"
    ]
    assert not (out / "metrics.csv").exists() and not (out / "summary.json").exists()


@pytest.mark.slow
def test_a_job_killed_and_resumed_continues_its_mlflow_run(tmp_path):
    from mlflow.tracking import MlflowClient

    uri, out = f"sqlite:///{tmp_path}/mlflow.db", tmp_path / "run"
    args = [*TINY, "max_iter=1500", "eval_every=100", "checkpoint_every=200", "threads=1", "logger=mlflow"]
    args += [f"logger.mlflow.tracking_uri={uri}", f"hydra.run.dir={out}"]
    train = [sys.executable, str(ROOT / "train.py"), *args]
    proc = subprocess.Popen(train, cwd=ROOT, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while not (out / "checkpoint.pt").exists() and time.time() < deadline:
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    kept = json.loads((out / "trackers.json").read_text())["mlflow"]["run_id"]

    train_cli(*args)
    client = MlflowClient(tracking_uri=uri)
    (run,) = client.search_runs([client.get_experiment_by_name("tpri").experiment_id])
    assert (run.info.run_id, run.info.status) == (kept, "FINISHED")
    steps = {m.step for m in client.get_metric_history(kept, "train_loss")}
    assert steps == set(range(0, 1501, 100))
