"""Bad configurations fail before training, with one message naming the key; numerical faults
end the job as `diverged` without a traceback."""

import sys

import pytest
from helpers import TINY

from tpri.app import main

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
    monkeypatch.setattr(
        sys, "argv", ["train.py", *base, "max_iter=5", f"hydra.run.dir={tmp_path}/run", *overrides]
    )
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
