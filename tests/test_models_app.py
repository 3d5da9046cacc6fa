"""Every dataset, model and method runs through the app's training loop (tiny budgets)."""

import json

import pytest
from datafiles import write_idx_dataset, write_ptb
from helpers import TINY, compose_config, read_metrics

from tpri.run import run


def train(tmp_path, overrides, name="job"):
    cfg = compose_config(["max_iter=20", "eval_every=10", *overrides])
    summary = run(cfg, tmp_path / name)
    return summary, read_metrics(tmp_path / name / "metrics.csv")


@pytest.mark.parametrize("optimizer", ["tp", "sgd"])
def test_digits(tmp_path, optimizer):
    summary, rows = train(
        tmp_path,
        [
            "dataset=digits",
            "dataset.size_chunk=4",
            "model.hidden=16",
            f"optimizer={optimizer}",
            "lr_target=1e-4",
            "reg=1",
        ],
    )
    assert summary["status"] == "completed"
    assert 0 <= float(rows[-1]["test_accuracy"]) <= 1


def test_permuted_mnist_from_local_idx_files(tmp_path):
    write_idx_dataset(tmp_path / "mnist", n_train=40, n_test=10)
    summary, rows = train(
        tmp_path,
        [
            "dataset=mnist",
            f"dataset.data_dir={tmp_path / 'mnist'}",
            "dataset.permute=true",
            "dataset.size_chunk=56",
            "model.hidden=8",
            "batch_size=4",
            "lr_target=1e-4",
            "reg=10",
        ],
    )
    assert summary["status"] == "completed"
    cfg = json.loads((tmp_path / "job" / "summary.json").read_text())["config"]
    assert cfg["dataset"]["permute"] is True


@pytest.mark.parametrize("optimizer", ["tp", "adam"])
def test_gru(tmp_path, optimizer):
    summary, _ = train(
        tmp_path,
        [*TINY, "model=gru", "model.hidden=16", f"optimizer={optimizer}", "log_cosine=true", "lr=1e-2"],
    )
    assert summary["status"] == "completed"


@pytest.mark.parametrize("optimizer", ["tp", "sgd"])
def test_text_rnn_on_ptb_files(tmp_path, optimizer):
    write_ptb(tmp_path / "ptb")
    summary, rows = train(
        tmp_path,
        [
            "model=rnn_text",
            "dataset=ptb",
            f"dataset.data_dir={tmp_path / 'ptb'}",
            "dataset.length=5",
            "model.hidden=8",
            "model.embedding_dim=6",
            "batch_size=4",
            f"optimizer={optimizer}",
            "lr_target=1e-3",
            "reg=1",
            "lr=0.05",
        ],
    )
    assert summary["status"] == "completed"
    assert float(rows[-1]["test_perplexity"]) < float(rows[0]["test_perplexity"])


def test_dtp(tmp_path):
    summary, _ = train(tmp_path, [*TINY, "optimizer=dtp"])
    assert summary["status"] == "completed"
