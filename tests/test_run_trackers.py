"""A job run with `logger=[tensorboard,mlflow]` is found by each tracker's own reader, with the
config as params and every evaluation of metrics.csv as metrics."""

import json

from helpers import TINY, read_metrics, train_cli


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
