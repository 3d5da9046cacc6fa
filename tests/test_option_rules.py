"""Each option rule is written once, by the option's owner: a config check and the owner's
constructor refuse the same value for the same reason, in their own words ("model.hidden=0 is
invalid; expected an integer >= 1" on the config path, "hidden must be an integer >= 1, got 0"
for a library call)."""

from __future__ import annotations

import re

import pytest
import torch
from helpers import TINY, compose_config

import tpri
from tpri.algorithm.steps import make_optimizer
from tpri.configs.build import make_direction, make_model
from tpri.configs.rules import ConfigError, check_config
from tpri.run.trackers import make_trackers

PARAMS = [torch.zeros(2, requires_grad=True)]

# (config overrides choosing the option, config key, bad value, the library call with that value)
CASES = [
    ([], "model.hidden", 0, lambda v: tpri.RNN(6, v, 4)),
    ([], "model.activation", "sigmoid", lambda v: tpri.RNN(6, 4, 4, activation=v)),
    (["model=gru"], "model.hidden", -3, lambda v: tpri.GRU(6, v, 4)),
    (
        ["model=rnn_text"],
        "model.embedding_dim",
        0,
        lambda v: tpri.TextRNN(9, 4, 9, embedding_dim=v),
    ),
    (
        ["model=rnn_text"],
        "model.freeze_embedding",
        1,
        lambda v: tpri.TextRNN(9, 4, 9, freeze_embedding=v),
    ),
    ([], "optimizer.lr_target", -1.0, lambda v: tpri.TargetProp(v, 1.0)),
    ([], "optimizer.reg", float("nan"), lambda v: tpri.TargetProp(0.1, v)),
    ([], "optimizer.targets", "exact", lambda v: tpri.TargetProp(0.1, 1.0, targets=v)),
    ([], "optimizer.update", "global", lambda v: tpri.TargetProp(0.1, 1.0, update=v)),
    ([], "optimizer.per_step", "mine", lambda v: tpri.TargetProp(0.1, 1.0, per_step=v)),
    (["optimizer=dtp"], "optimizer.variant", "other", lambda v: tpri.DTP(0.1, 0.1, 0.1, variant=v)),
    (["optimizer=dtp"], "optimizer.lr_reverse", -1.0, lambda v: tpri.DTP(0.1, v, 0.1)),
    (["optimizer=dtp"], "optimizer.noise", -0.5, lambda v: tpri.DTP(0.1, 0.1, v)),
    (["optimizer=dtp"], "optimizer.momentum", 1.5, lambda v: tpri.DTP(0.1, 0.1, 0.1, momentum=v)),
    (["optimizer=sgd", "lr=0.1"], "optimizer.momentum", 1.0, lambda v: make_optimizer(PARAMS, momentum=v)),
    ([], "optimizer.step", "rmsprop", lambda v: make_optimizer(PARAMS, step=v)),
    ([], "lr", 0.0, lambda v: make_optimizer(PARAMS, lr=v)),
    ([], "lr", 1e300, lambda v: make_optimizer(PARAMS, lr=v)),  # beyond float32, where training runs
]


def _config_error(overrides: list[str], key: str, value) -> str:
    cfg = compose_config([*TINY, *overrides])
    group, _, name = key.rpartition(".")
    (cfg[group] if group else cfg)[name] = value
    with pytest.raises(ConfigError) as error:
        check_config(cfg)
    return str(error.value)


@pytest.mark.parametrize("overrides, key, value, build", CASES, ids=[f"{c[1]}={c[2]!r}" for c in CASES])
def test_the_config_and_the_constructor_refuse_a_value_by_one_rule(overrides, key, value, build):
    config_line = _config_error(overrides, key, value)
    match = re.fullmatch(rf"{re.escape(key)}=.* is invalid; expected (.*)", config_line)
    assert match, config_line
    expected = match.group(1)
    with pytest.raises(ValueError) as error:
        build(value)
    name = key.rpartition(".")[2]
    assert str(error.value) == f"{name} must be {expected}, got {value!r}"


def test_a_combination_is_refused_by_one_rule_on_both_paths():
    config_line = _config_error(["optimizer.targets=difference"], "optimizer.per_step", "authors")
    assert config_line == (
        "optimizer.per_step='authors' is defined for optimizer.targets='linearized', got 'difference'"
    )
    with pytest.raises(ValueError) as error:
        tpri.TargetProp(0.1, 1.0, targets="difference", per_step="authors")
    assert str(error.value) == "per_step='authors' is defined for targets='linearized', got 'difference'"
    nesterov = _config_error(["optimizer=sgd", "lr=0.1", "optimizer.momentum=0"], "optimizer.nesterov", True)
    with pytest.raises(ValueError) as error:
        make_optimizer(PARAMS, momentum=0.0, nesterov=True)
    assert str(error.value) == nesterov
    with pytest.raises(ValueError) as error:  # the reverse layer of DTP steps with the same rule
        tpri.DTP(0.1, 0.1, 0.1, momentum=0.0, nesterov=True)
    assert str(error.value) == nesterov


@pytest.mark.parametrize(
    "group, build",
    [("model", lambda: make_model("lstm", 3, 3)), ("optimizer", lambda: make_direction("rmsprop"))],
)
def test_a_name_outside_its_registry_gets_the_config_line(group, build):
    config_line = _config_error([], f"{group}.name", "lstm" if group == "model" else "rmsprop")
    with pytest.raises(ValueError) as error:
        build()
    assert str(error.value) == config_line


def test_the_logger_key_is_checked_by_one_rule(tmp_path):
    config_line = _config_error([], "logger", ["tensorboard"])
    with pytest.raises(ConfigError) as error:
        make_trackers(["tensorboard"], tmp_path, "run")
    assert (
        str(error.value)
        == config_line
        == ("logger=['tensorboard'] is invalid; expected null or a mapping {tracker: options}")
    )
    assert list(tmp_path.iterdir()) == []


def test_the_default_model_the_figures_assume_is_the_configs_default():
    """A record without model.name ran conf/config.yaml's default model: the figures name it so."""
    from tpri.configs.build import DEFAULT_MODEL

    assert compose_config([])["model"]["name"] == DEFAULT_MODEL
