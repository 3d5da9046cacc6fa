"""Build models, update directions and torch optimizers from plain option dicts (the config
groups `model/` and `optimizer/`), so the Hydra app and Python users share one code path.

MODELS and OPTIMIZERS are the registries of the config names: each name is written here once,
and every fact about an option (what it accepts, what it trains) is asked of its class."""

from __future__ import annotations

from torch import nn

from tpri.algorithm.dtp import DTP
from tpri.algorithm.gru import GRU
from tpri.algorithm.models import RNN
from tpri.algorithm.steps import STEP_KEYS, STEPS, AdamStep, SGDStep, check_step, make_optimizer
from tpri.algorithm.text_model import TextRNN
from tpri.algorithm.tp import Backprop, TargetProp
from tpri.spec import check_choice

__all__ = [
    "DIRECTIONS",
    "MODELS",
    "OPTIMIZERS",
    "STEPS",
    "check_step",
    "make_direction",
    "make_model",
    "make_optimizer",
]

MODELS = {"rnn": RNN, "gru": GRU, "rnn_text": TextRNN}
DEFAULT_MODEL = "rnn"  # conf/config.yaml's default model (tests/test_option_rules.py checks they agree)

# optimizer config name -> (the class computing the update direction, the options of its step)
OPTIMIZERS = {
    "sgd": (Backprop, SGDStep),
    "adam": (Backprop, AdamStep),
    "tp": (TargetProp, SGDStep),
    "dtp": (DTP, SGDStep),
}
DIRECTIONS = {name: direction for name, (direction, _) in OPTIMIZERS.items()}


def make_model(name: str, input_size: int, output_size: int, **options) -> nn.Module:
    """The model `name` (a key of MODELS) for a task's input and output sizes."""
    check_choice("model.name", name, sorted(MODELS))
    return MODELS[name](input_size=input_size, output_size=output_size, **options)


def make_direction(name: str, **options):
    """The update direction (Backprop, TargetProp, ...) of optimizer config `name`; the step
    options (STEP_KEYS) are ignored here, except those the direction names in STEP_OPTIONS."""
    check_choice("optimizer.name", name, sorted(DIRECTIONS))
    cls = DIRECTIONS[name]
    shared = getattr(cls, "STEP_OPTIONS", ())  # step options the direction also reads (DTP)
    rest = {k: v for k, v in options.items() if k not in STEP_KEYS or k in shared}
    return cls(**rest)
