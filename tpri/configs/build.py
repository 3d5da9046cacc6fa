"""Build models, update directions and torch optimizers from plain option dicts (the config
groups `model/` and `optimizer/`), so the Hydra app and Python users share one code path."""

from __future__ import annotations

import torch
from torch import nn

from tpri.algorithm.dtp import DTP
from tpri.algorithm.gru import GRU
from tpri.algorithm.models import RNN
from tpri.algorithm.text_model import TextRNN
from tpri.algorithm.tp import Backprop, TargetProp
from tpri.spec import ConfigError, show

MODELS = {"rnn": RNN, "gru": GRU, "rnn_text": TextRNN}

# optimizer config name -> the class computing the update direction
DIRECTIONS = {"sgd": Backprop, "adam": Backprop, "tp": TargetProp, "dtp": DTP}
STEPS = ("sgd", "adam")
STEP_KEYS = ("lr", "step", "momentum", "nesterov")  # options of the torch optimizer


def _unknown(key: str, value, accepted) -> ValueError:
    return ValueError(f"{key}: unknown option {value!r}; accepted: {sorted(accepted)}")


def make_model(name: str, input_size: int, output_size: int, **options) -> nn.Module:
    """The model `name` (a key of MODELS) for a task's input and output sizes."""
    if name not in MODELS:
        raise _unknown("model.name", name, MODELS)
    return MODELS[name](input_size=input_size, output_size=output_size, **options)


def make_direction(name: str, **options):
    """The update direction (Backprop, TargetProp, ...) of optimizer config `name`; the step
    options (STEP_KEYS) are ignored here, except those the direction names in STEP_OPTIONS."""
    if name not in DIRECTIONS:
        raise _unknown("optimizer.name", name, DIRECTIONS)
    cls = DIRECTIONS[name]
    shared = getattr(cls, "STEP_OPTIONS", ())  # step options the direction also reads (DTP)
    rest = {k: v for k, v in options.items() if k not in STEP_KEYS or k in shared}
    return cls(**rest)


def check_step(options: dict) -> None:
    """ConfigError when the step options of an optimizer section do not fit together: Adam
    has no momentum, Nesterov needs momentum."""
    momentum, nesterov = options.get("momentum", 0.0), options.get("nesterov", False)
    if options.get("step", "sgd") == "adam" and (momentum or nesterov):
        key, value = ("momentum", momentum) if momentum else ("nesterov", nesterov)
        raise ConfigError(
            f"optimizer.{key}={show(value)} does not apply to optimizer.step=adam (Adam has no "
            f"momentum); set optimizer.momentum=0 and optimizer.nesterov=false, or optimizer.step=sgd"
        )
    if nesterov and momentum == 0:
        raise ConfigError("optimizer.nesterov=true needs optimizer.momentum > 0 (got optimizer.momentum=0)")


def make_optimizer(
    params, step: str = "sgd", lr: float = 0.1, momentum: float = 0.0, nesterov: bool = False, **_
) -> torch.optim.Optimizer:
    """The torch optimizer that steps on the directions: SGD (optionally momentum /
    Nesterov) or Adam."""
    if not isinstance(lr, (int, float)) or isinstance(lr, bool) or not lr > 0:
        raise ValueError(f"lr must be a number > 0, got {lr!r}")
    check_step(dict(step=step, momentum=momentum, nesterov=nesterov))
    if step == "sgd":
        if not 0 <= momentum < 1:
            raise ValueError(f"optimizer.momentum must be in [0, 1), got {momentum!r}")
        return torch.optim.SGD(params, lr=lr, momentum=momentum, nesterov=nesterov)
    if step == "adam":
        return torch.optim.Adam(params, lr=lr)
    raise _unknown("optimizer.step", step, STEPS)
