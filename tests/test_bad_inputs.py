"""Every option of every config group refused with one line naming its full key when it is bad:
types, nulls, ranges, non-finite values, combinations and resources, checked the way a sweep
checks each of its jobs before any starts (Hydra composition in-process, then check_config and
check_resources); config groups set to null or to no option, through the CLI entry; data files
that are only bad at run time; and the plain-dict library path without Hydra."""

from __future__ import annotations

import dataclasses
import json
import sys

import pytest
from datafiles import write_idx_dataset, write_ptb
from helpers import CONF, TINY, compose_config
from hydra import initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

from tpri.app import main
from tpri.configs.resources import estimate_memory, peak
from tpri.configs.rules import ConfigError, check_config, check_resources, plain_config
from tpri.configs.schema import GROUPS
from tpri.run.preflight import JobComposer, check_job

PTB = ["dataset=ptb", "model=rnn_text"]
# (overrides, the full key the one-line message must name)
BAD = [
    # --- top level: types, nulls, non-finite values, ranges
    (["seed=-1"], "seed"),
    (["seed=1.5"], "seed"),
    (["seed=abc"], "seed"),
    (["seed=null"], "seed"),
    (["seed=4294967296"], "seed"),
    (["lr=inf"], "lr"),
    (["lr=nan"], "lr"),
    (["lr=1e+308"], "lr"),  # finite, but not in float32
    (["lr=1e-320"], "lr"),  # > 0, but 0 in float32
    (["reg=1e+308"], "reg"),
    (["lr_target=1e+39"], "lr_target"),
    (["lr=-inf"], "lr"),
    (["lr=true"], "lr"),
    (["lr=null"], "lr"),
    (["reg=inf"], "reg"),
    (["reg=nan"], "reg"),
    (["lr_target=inf"], "lr_target"),
    (["lr_target=abc"], "lr_target"),
    (["max_iter=1.5"], "max_iter"),
    (["max_iter=10.0"], "max_iter"),
    (["max_iter=null"], "max_iter"),
    (["batch_size=-1"], "batch_size"),
    (["batch_size=abc"], "batch_size"),
    (["eval_every=1.5"], "eval_every"),
    (["checkpoint_every=-1"], "checkpoint_every"),
    (["device=gpu"], "device"),
    (["device=null"], "device"),
    (["threads=-1"], "threads"),
    (["threads=abc"], "threads"),
    (["log_gradients=yes"], "log_gradients"),
    (["log_cosine=2"], "log_cosine"),
    (["log_cosine=off"], "log_cosine"),
    (["diverge_weight_norm=0"], "diverge_weight_norm"),
    (["diverge_weight_norm=inf"], "diverge_weight_norm"),
    (["tuned_lr=-1"], "tuned_lr"),
    (["+foo=1"], "foo"),
    # --- dataset: temporal order, adding
    (["dataset.length=0"], "dataset.length"),
    (["dataset.length=abc"], "dataset.length"),
    (["dataset.length=2"], "dataset.length"),  # too short for the marker windows
    (["dataset.bits=2"], "dataset.bits"),
    (["dataset.bits=null"], "dataset.bits"),
    (["dataset.variable_length=no"], "dataset.variable_length"),
    (["dataset.variable_length=null"], "dataset.variable_length"),
    (["dataset.test_size=0"], "dataset.test_size"),
    (["dataset.test_size=-5"], "dataset.test_size"),
    (["dataset.eval_size=abc"], "dataset.eval_size"),
    (["dataset.test_seed=1.5"], "dataset.test_seed"),
    (["dataset.test_seed=-1"], "dataset.test_seed"),
    (["+dataset.foo=1"], "dataset.foo"),
    (["dataset=adding", "dataset.length=1"], "dataset.length"),
    (["dataset=adding", "dataset.bits=1"], "dataset.bits"),
    (["dataset=adding", "dataset.eval_size=0"], "dataset.eval_size"),
    # --- dataset: images
    (["dataset=digits", "dataset.test_fraction=1.5"], "dataset.test_fraction"),
    (["dataset=digits", "dataset.test_fraction=0"], "dataset.test_fraction"),
    (["dataset=digits", "dataset.test_fraction=0.001"], "dataset.test_fraction"),
    (["dataset=digits", "dataset.test_fraction=nan"], "dataset.test_fraction"),
    (["dataset=digits", "dataset.size_chunk=3"], "dataset.size_chunk"),
    (["dataset=digits", "dataset.size_chunk=0"], "dataset.size_chunk"),
    (["dataset=digits", "dataset.permute=no"], "dataset.permute"),
    (["dataset=digits", "dataset.permute_seed=abc"], "dataset.permute_seed"),
    (["dataset=digits", "dataset.split_seed=-1"], "dataset.split_seed"),
    (["dataset=mnist", "dataset.normalize=no"], "dataset.normalize"),
    (["dataset=mnist", "dataset.n_train=0"], "dataset.n_train"),
    (["dataset=mnist", "dataset.n_train=abc"], "dataset.n_train"),
    (["dataset=mnist", "dataset.size_chunk=5"], "dataset.size_chunk"),
    (["dataset=mnist", "dataset.download=maybe"], "dataset.download"),
    (["dataset=mnist", "dataset.data_dir=null"], "dataset.data_dir"),
    (["dataset=fashion_mnist", "dataset.size_chunk=abc"], "dataset.size_chunk"),
    (["dataset=fashion_mnist", "dataset.permute_seed=-3"], "dataset.permute_seed"),
    (["dataset=cifar10", "dataset.grayscale=true", "dataset.channels_as_steps=true"], "dataset.grayscale"),
    (["dataset=cifar10", "dataset.size_chunk=3"], "dataset.size_chunk"),
    (["dataset=cifar10", "dataset.channels_as_steps=true", "dataset.size_chunk=5"], "dataset.size_chunk"),
    (["dataset=cifar10", "dataset.n_train=-1"], "dataset.n_train"),
    # --- dataset: text
    ([*PTB, "dataset.length=0"], "dataset.length"),
    ([*PTB, "dataset.n_tokens=10"], "dataset.n_tokens"),
    ([*PTB, "dataset.n_test_tokens=0"], "dataset.n_test_tokens"),
    ([*PTB, "dataset.download=1"], "dataset.download"),
    (["dataset=ptb"], "dataset=ptb"),  # model=rnn reads float inputs
    (["dataset=ptb", "model=gru"], "dataset=ptb"),
    # --- model
    (["model.hidden=0"], "model.hidden"),
    (["model.hidden=true"], "model.hidden"),
    (["model.hidden=1.5"], "model.hidden"),
    (["model.hidden=null"], "model.hidden"),
    (["model.activation=null"], "model.activation"),
    (["model=gru", "model.activation=tanh"], "model.activation"),
    (["model=gru", "model.hidden=-1"], "model.hidden"),
    (["model=rnn_text"], "model=rnn_text"),  # temporal order gives no token ids
    ([*PTB, "model.embedding_dim=0"], "model.embedding_dim"),
    ([*PTB, "model.freeze_embedding=no"], "model.freeze_embedding"),
    (["optimizer=dtp", "model.activation=relu"], "model.activation"),
    # --- optimizer
    (["optimizer=sgd", "optimizer.nesterov=no"], "optimizer.nesterov"),
    (["optimizer=sgd", "optimizer.momentum=abc"], "optimizer.momentum"),
    (["optimizer=sgd", "optimizer.momentum=-0.1"], "optimizer.momentum"),
    (["optimizer=sgd", "optimizer.momentum=1"], "optimizer.momentum"),
    (["optimizer=sgd", "optimizer.momentum=0"], "optimizer.nesterov"),  # Nesterov, no momentum
    (["optimizer=sgd", "optimizer.lr=null"], "optimizer.lr"),
    (["optimizer=sgd", "optimizer.step=null"], "optimizer.step"),
    (["optimizer=adam", "+optimizer.momentum=0.9"], "optimizer.momentum"),
    (["optimizer=adam", "optimizer.step=sgd"], "optimizer.step"),
    (["optimizer=adam", "+optimizer.foo=1"], "optimizer.foo"),
    (["optimizer=adam", "optimizer.lr=inf"], "optimizer.lr"),
    (["optimizer.step=adam", "optimizer.momentum=0.9"], "optimizer.momentum"),
    (["optimizer.lr_target=inf"], "optimizer.lr_target"),
    (["optimizer.reg=-1"], "optimizer.reg"),
    (["optimizer.reg=nan"], "optimizer.reg"),
    (["optimizer.targets=null"], "optimizer.targets"),
    (["optimizer.update=null"], "optimizer.update"),
    (["optimizer.nesterov=1"], "optimizer.nesterov"),
    (["optimizer=dtp", "optimizer.noise=-1"], "optimizer.noise"),
    (["optimizer=dtp", "optimizer.lr_reverse=nan"], "optimizer.lr_reverse"),
    (["optimizer=dtp", "optimizer.targets=linearized"], "optimizer.targets"),
    ([*PTB, "optimizer=dtp"], "optimizer=dtp"),
    (["model=gru", "optimizer.targets=inverse"], "optimizer.targets"),
    # --- resources (the limit is fixed below: 16 GB)
    (["model.hidden=100000"], "model.hidden"),
    (["batch_size=10000000"], "batch_size"),
    (["dataset.test_size=100000000"], "dataset.test_size"),
    (["threads=100000"], "threads"),
]


@pytest.fixture(autouse=True)
def _memory_limit(monkeypatch):
    monkeypatch.setenv("TPRI_MEMORY_LIMIT", "16e9")


@pytest.fixture(scope="module")
def composer():
    """Jobs composed as a sweep composes them before any starts."""
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        hydra = GlobalHydra.instance().hydra
    return JobComposer(hydra, "config", [])  # usable once the global instance is cleared


def test_the_table_is_large_and_covers_every_group():
    assert len(BAD) >= 100
    for group in ("dataset", "model", "optimizer"):
        assert sum(key.startswith(group) for _, key in BAD) >= 10


@pytest.mark.parametrize("overrides, key", BAD, ids=[" ".join(o) for o, _ in BAD])
def test_bad_value_is_refused_in_one_line_naming_the_key(composer, overrides, key):
    error = check_job(composer.compose, overrides)
    assert error is not None, f"{overrides} accepted"
    assert key in error and "\n" not in error and "Traceback" not in error
    name, _, value = overrides[-1].lstrip("+").partition("=")
    if name == key and error.startswith(f"{key}="):
        assert value in error  # the value is shown, e.g. lr='abc', lr=inf, seed=null


def test_every_yaml_option_has_a_schema_and_every_schema_field_a_yaml_value(composer):
    for group, options in GROUPS.items():
        assert sorted(options) == sorted(p.stem for p in (CONF / group).glob("*.yaml"))
        for option, schema in options.items():
            cfg = plain_config(composer.compose([f"{group}={option}"]))  # a missing value raises
            assert set(cfg[group]) == {f.name for f in dataclasses.fields(schema)}


def test_good_values_pass(composer):
    for overrides in (
        [],
        ["optimizer=sgd", "lr=1e-5", "optimizer.nesterov=false"],
        ["optimizer=adam", "lr=1e-3"],
        [*PTB],
        ["dataset=digits"],
        ["model=gru"],
        ["dataset=cifar10"],
        ["optimizer=dtp"],
        ["dataset.variable_length=true"],
        ["tuned_lr=0.1"],
    ):
        assert check_job(composer.compose, overrides) is None, overrides


def test_a_bp_command_line_needs_its_step_size(composer):
    assert check_job(composer.compose, ["optimizer=sgd"]) == (
        "optimizer=sgd needs its step size on the command line (the default lr=0.1 is TP's): "
        "e.g. lr=1e-5 for sgd (the paper's BP on temporal order, Nesterov 0.9), lr=1e-3 for adam"
    )
    assert "reg=1 has no effect" in check_job(composer.compose, ["optimizer=adam", "lr=1e-3", "reg=1"])
    assert check_job(composer.compose, ["experiment=temporal_order_60_bp"]) is None  # lr set there
    assert check_job(composer.compose, ["reg=1", "lr_target=0.1"]) is None  # TP reads both


# --- through the CLI entry (in-process): exit 2, one line, nothing written or changed -------

CLI_BAD = [
    (["optimizer=null"], "optimizer"),
    (["model=null"], "model"),
    (["dataset=null"], "dataset"),
    (["~optimizer"], "optimizer"),
    (["model=foo"], "model"),
    (["lr=0.1,0.2"], "lr"),  # a sweep without -m
    (["optimizer=sgd", "optimizer.nesterov=no"], "optimizer.nesterov"),
    (["-m", "lr=0.1,abc,0.05"], "lr='abc'"),
    (["-m", "model.hidden=16,32,0"], "model.hidden=0"),
    (["-m", "model.hidden=16,32,0", "hydra/launcher=joblib"], "model.hidden=0"),
    (["-m", "optimizer=sgd,adam", "lr=1e-3", "optimizer.nesterov=true"], "optimizer.nesterov"),
]


def run_main(args, tmp_path, capsys, monkeypatch):
    keys = {a.partition("=")[0] for a in args}
    base = [] if "dataset" in keys else [a for a in TINY if a.partition("=")[0] not in keys]
    monkeypatch.setattr(
        sys,
        "argv",
        [
            "train.py",
            *base,
            "max_iter=4",
            "eval_every=2",
            f"hydra.run.dir={tmp_path}/run",
            f"hydra.sweep.dir={tmp_path}/sweep",
            *args,
        ],
    )
    with pytest.raises(SystemExit) as exit_info:
        main()
    captured = capsys.readouterr()
    return exit_info.value.code, captured.out + captured.err


@pytest.mark.parametrize("args, key", CLI_BAD, ids=[" ".join(a) for a, _ in CLI_BAD])
def test_cli_refuses_before_writing_anything(args, key, tmp_path, capsys, monkeypatch):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "summary.json").write_text('{"status": "completed"}')
    code, output = run_main(args, tmp_path, capsys, monkeypatch)
    assert code == 2
    assert key in output and "Traceback" not in output
    lines = [line for line in output.splitlines() if line.strip()]
    assert len(lines) <= 2, output  # the line, plus a heading for a sweep
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["run", "summary.json"]
    assert (tmp_path / "run" / "summary.json").read_text() == '{"status": "completed"}'


def test_a_sweep_names_each_bad_job_with_its_number_and_overrides(tmp_path, capsys, monkeypatch):
    code, output = run_main(["-m", "lr=0.1,abc", "model.hidden=0,8"], tmp_path, capsys, monkeypatch)
    assert code == 2
    assert not (tmp_path / "sweep").exists()
    lines = output.strip().splitlines()
    assert lines[0] == "Invalid configuration: 3 invalid job(s); no job was started"
    assert lines[1:] == [
        "job 0 (lr=0.1 model.hidden=0): model.hidden=0 is invalid; expected an integer >= 1",
        "job 2 (lr=abc model.hidden=0): lr='abc' is invalid; expected a finite number > 0 (float32)",
        "job 3 (lr=abc model.hidden=8): lr='abc' is invalid; expected a finite number > 0 (float32)",
    ]


# --- data that is only bad at run time --------------------------------------------------------


def _corrupt(folder):
    write_idx_dataset(folder, n_train=12, n_test=5)
    (folder / "t10k-labels-idx1-ubyte.gz").write_bytes(b"garbage")


def _empty(folder):
    write_idx_dataset(folder, n_train=0, n_test=5)


def _truncated(folder):
    write_idx_dataset(folder, n_train=12, n_test=5, gz=False)
    path = folder / "train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-10])


def _bad_magic(folder):
    write_idx_dataset(folder, n_train=12, n_test=5, gz=False)
    path = folder / "train-labels-idx1-ubyte"
    path.write_bytes(b"\x01\x02" + path.read_bytes()[2:])


DATA = [
    ("corrupt gzip", _corrupt, "t10k-labels-idx1-ubyte.gz"),
    ("no images", _empty, "train-images-idx3-ubyte.gz"),
    ("truncated", _truncated, "train-images-idx3-ubyte"),
    ("bad magic", _bad_magic, "train-labels-idx1-ubyte"),
    ("missing", lambda folder: None, "train-images-idx3-ubyte"),
]


@pytest.mark.parametrize("name, make, file", DATA, ids=[d[0] for d in DATA])
def test_bad_data_file_single_run_names_the_file(name, make, file, tmp_path, capsys, monkeypatch):
    """Missing files: a config error (exit 2, nothing written); damaged files: the job fails
    (exit 1, status failed with the reason)."""
    make(tmp_path / "data")
    code, output = run_main(
        ["dataset=mnist", "dataset.size_chunk=16", f"dataset.data_dir={tmp_path}/data"],
        tmp_path,
        capsys,
        monkeypatch,
    )
    lines = output.strip().splitlines()
    if name != "missing":  # a job that started (missing files are refused before: no run dir)
        assert lines.pop(0).startswith(f"run dir: {tmp_path}/run")
    assert file in output and "Traceback" not in output and len(lines) == 1
    if name == "missing":
        assert code == 2 and not (tmp_path / "run").exists()
    else:
        summary = json.loads((tmp_path / "run" / "summary.json").read_text())
        assert code == 1 and summary["status"] == "failed" and file in summary["reason"]


def test_non_utf8_ptb_text_is_named(tmp_path, capsys, monkeypatch):
    write_ptb(tmp_path / "ptb")
    (tmp_path / "ptb" / "ptb.test.txt").write_bytes(b"\xff\xfe the cat")
    code, output = run_main(
        [*PTB, f"dataset.data_dir={tmp_path}/ptb", "dataset.length=4", "dataset.n_tokens=null"],
        tmp_path,
        capsys,
        monkeypatch,
    )
    assert code == 1 and "ptb.test.txt: not UTF-8 text" in output


# --- the library path: plain dicts, no Hydra ------------------------------------------------


def _plain(**changes):
    cfg = compose_config(TINY)
    for key, value in changes.items():
        group, _, name = key.rpartition("__")
        (cfg[group] if group else cfg)[name] = value
    return cfg


@pytest.mark.parametrize(
    "changes, key",
    [
        ({"lr": float("nan")}, "lr"),
        ({"lr": "0.1"}, "lr"),
        ({"max_iter": True}, "max_iter"),
        ({"model__hidden": 16.0}, "model.hidden"),
        ({"optimizer__nesterov": "no"}, "optimizer.nesterov"),
        ({"dataset__variable_length": 1}, "dataset.variable_length"),
        ({"dataset__foo": 1}, "dataset.foo"),
        ({"optimizer": None}, "optimizer"),
        ({"model__name": "lstm"}, "model.name"),
        ({"logger": "mlflow"}, "logger"),
    ],
)
def test_plain_dicts_are_checked_without_hydra(changes, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        check_config(_plain(**changes))


def test_missing_keys_are_named():
    cfg = _plain()
    del cfg["batch_size"], cfg["model"]["hidden"]
    with pytest.raises(ConfigError, match="batch_size: missing"):
        check_config(cfg)
    cfg["batch_size"] = 4
    with pytest.raises(ConfigError, match=r"model\.hidden: missing"):
        check_config(cfg)


def test_memory_estimate_scales_with_the_job_and_names_what_to_shrink():
    small = _plain()
    parts = estimate_memory(small)
    assert 0 < peak(parts) - parts["runtime"] < 50e6  # T = 20, d = 16: a few MB, and torch's runtime
    wide = _plain(model__hidden=32)
    assert estimate_memory(wide)["parameters"] > 3 * parts["parameters"]
    check_resources(small, available=int(1e9))
    with pytest.raises(ConfigError, match=r"memory: this job needs about .* [MG]B .* available; shrink \w"):
        check_resources(small, available=peak(parts) // 2)


def test_gpu_jobs_are_checked_against_the_gpu(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ConfigError, match=r"device='cuda' was asked for but CUDA is not available"):
        check_resources(_plain(device="cuda"), available=int(1e12))

    class Properties:
        total_memory = int(1e5)

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda index: Properties())
    with pytest.raises(ConfigError, match=r"on the GPU, more than its 0\.1 MB; shrink batch_size="):
        check_resources(_plain(device="auto"), available=int(1e12))
    check_resources(_plain(device="cpu"), available=int(1e12))  # the GPU is not used
