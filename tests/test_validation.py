"""Bad configurations fail before training, with one message naming the key; numerical faults
end the job as `diverged` without a traceback."""

import json
import sys

import pytest
import torch
from helpers import TINY, compose_config

from tpri.app import main
from tpri.train import Job, run

BAD = [  # (overrides, a word the message must contain)
    (["reg=-1"], "reg"),
    (["lr=0"], "lr"),
    (["lr=-0.1"], "lr"),
    (["lr=abc"], "lr"),
    (["lr_target=-1"], "lr_target"),
    (["model.hidden=0"], "hidden"),
    (["model.activation=sigmoid"], "activation"),
    (["model.activation=relu"], "activation"),  # TP cannot invert relu
    (["batch_size=0"], "batch_size"),
    (["max_iter=0"], "max_iter"),
    (["eval_every=0"], "eval_every"),
    (["device=tpu"], "device"),
    (["dataset.length=5"], "length"),
    (["dataset.bits=2"], "bits"),
    (["optimizer.targets=exact"], "targets"),
    (["model=gru", "optimizer.targets=difference"], "targets"),
    (["optimizer.update=global"], "update"),
    (["optimizer.step=rmsprop"], "step"),
    (["optimizer=sgd", "optimizer.momentum=1.5"], "momentum"),
    (["optimizer=foo"], "optimizer"),
    (["dataset=foo"], "dataset"),
    (["model.hiden=10"], "hiden"),
    (["dataset=mnist", "dataset.data_dir=/nonexistent/mnist"], "train-images-idx3-ubyte"),
]


def run_cli(overrides, tmp_path, capsys, monkeypatch):
    base = [] if any(o.startswith("dataset=") for o in overrides) else TINY
    monkeypatch.setattr(sys, "argv", ["train.py", *base, "max_iter=5",
                                      f"hydra.run.dir={tmp_path}/run", *overrides])
    with pytest.raises(SystemExit) as exit_info:
        main()
    captured = capsys.readouterr()
    return exit_info.value.code, captured.out + captured.err


@pytest.mark.parametrize("overrides, key", BAD, ids=[" ".join(o) for o, _ in BAD])
def test_bad_config_exits_nonzero_naming_the_key(overrides, key, tmp_path, capsys, monkeypatch):
    code, output = run_cli(overrides, tmp_path, capsys, monkeypatch)
    assert code == 2  # a config error: one line, nothing written
    assert key in output
    assert "Traceback" not in output
    # nothing a collector would read as a result
    assert not list(tmp_path.rglob("metrics.csv")) and not list(tmp_path.rglob("summary.json"))


def tiny_job(tmp_path, *overrides):
    cfg = compose_config([*TINY, "max_iter=20", "eval_every=10", *overrides])
    return Job(cfg), tmp_path


def test_nan_weights_end_the_job_as_diverged(tmp_path):
    job, out = tiny_job(tmp_path)
    with torch.no_grad():
        job.model.rnn.weight_hh_l0.fill_(float("nan"))
    summary = job.fit(out)
    assert summary["status"] == "diverged" and summary["reason"]
    assert json.loads((out / "summary.json").read_text())["status"] == "diverged"


def test_singular_w_without_regularization_ends_as_diverged(tmp_path):
    job, out = tiny_job(tmp_path, "reg=0")
    with torch.no_grad():
        job.model.rnn.weight_hh_l0.zero_()
    summary = job.fit(out)
    assert summary["status"] == "diverged" and "Cholesky" in summary["reason"]


def test_exploding_loss_triggers_the_papers_divergence_rule(tmp_path):
    cfg = compose_config([*TINY, "optimizer=sgd", "lr=50", "max_iter=200", "eval_every=10"])
    summary = run(cfg, tmp_path)
    assert summary["status"] == "diverged"
    assert "initial" in summary["reason"] or "non-finite" in summary["reason"]


def test_resuming_with_a_different_config_is_refused(tmp_path):
    run(compose_config([*TINY, "max_iter=10", "eval_every=5"]), tmp_path)
    with pytest.raises(ValueError, match="different config"):
        run(compose_config([*TINY, "max_iter=10", "eval_every=5", "lr=0.5"]), tmp_path)


def test_an_unexpected_error_is_recorded_as_failed_and_raised(tmp_path):
    job, out = tiny_job(tmp_path)
    calls = []

    def broken(*args):
        calls.append(1)
        if len(calls) == 5:
            raise RuntimeError("out of memory")
        return torch.tensor(1.0)

    job.direction.backward = broken
    with pytest.raises(RuntimeError, match="out of memory"):
        job.fit(out)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "failed" and "out of memory" in summary["reason"]
    assert summary["iteration"] == 4
