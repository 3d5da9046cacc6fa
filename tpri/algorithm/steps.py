"""The step on the directions: the torch optimizer (SGD, optionally with momentum and Nesterov,
or Adam), with the options it accepts, declared once for the optimizer config sections and for
`make_optimizer`."""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch
from omegaconf import MISSING

from tpri.spec import ConfigError, check_arguments, show, spec

STEPS = ("sgd", "adam")


@dataclass
class Step:
    """What every step takes."""

    lr: float = spec(gt=0)


@dataclass
class AdamStep(Step):
    """The options of the optimizer `adam`: Adam, which has no momentum."""

    step: str = spec(choices=("adam",))


@dataclass
class SGDStep(Step):
    """The options of a step that may be SGD (momentum, Nesterov) or Adam."""

    step: str = spec(choices=STEPS)
    momentum: float = spec(ge=0, lt=1)
    nesterov: bool = MISSING


STEP_KEYS = tuple(f.name for f in fields(SGDStep))  # options of the torch optimizer


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
    check_arguments(dict(step=step, lr=lr, momentum=momentum, nesterov=nesterov), SGDStep)
    check_step(dict(step=step, momentum=momentum, nesterov=nesterov))
    if step == "adam":
        return torch.optim.Adam(params, lr=lr)
    return torch.optim.SGD(params, lr=lr, momentum=momentum, nesterov=nesterov)
