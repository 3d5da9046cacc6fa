"""Checks of the top-level config keys; each group's options are checked by the constructor
they are passed to (tasks, models, directions, optimizers), and the training loop turns those
complaints into a `ConfigError` naming the group."""

from __future__ import annotations

import math


class ConfigError(ValueError):
    """A configuration value is missing, of the wrong type or out of range."""


DEVICES = ("auto", "cpu", "cuda")


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and not math.isnan(v)


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


# key -> (test, what is accepted)
TOP_LEVEL = {
    "seed": (lambda v: _is_int(v) and v >= 0, "an integer >= 0"),
    "lr": (lambda v: _is_number(v) and v > 0, "a number > 0"),
    "reg": (lambda v: _is_number(v) and v >= 0, "a number >= 0"),
    "lr_target": (lambda v: _is_number(v) and v >= 0, "a number >= 0"),
    "max_iter": (lambda v: _is_int(v) and v >= 1, "an integer >= 1"),
    "batch_size": (lambda v: _is_int(v) and v >= 1, "an integer >= 1"),
    "eval_every": (lambda v: _is_int(v) and v >= 1, "an integer >= 1"),
    "checkpoint_every": (lambda v: _is_int(v) and v >= 0, "an integer >= 0 (0: at the end only)"),
    "device": (lambda v: v in DEVICES, f"one of {list(DEVICES)}"),
    "threads": (lambda v: _is_int(v) and v >= 0, "an integer >= 0 (0: torch's default)"),
    "log_gradients": (lambda v: isinstance(v, bool), "true or false"),
    "log_cosine": (lambda v: isinstance(v, bool), "true or false"),
}
GROUPS = ("dataset", "model", "optimizer")


def check_config(cfg: dict) -> None:
    """Raise ConfigError naming the first bad key, its value and what is accepted."""
    for group in GROUPS:
        if not isinstance(cfg.get(group), dict) or "name" not in cfg[group]:
            raise ConfigError(f"{group}: missing config group (choose one with {group}=NAME)")
    for key, (test, accepted) in TOP_LEVEL.items():
        if key not in cfg:
            raise ConfigError(f"{key}: missing; expected {accepted}")
        if not test(cfg[key]):
            raise ConfigError(f"{key}={cfg[key]!r} is invalid; expected {accepted}")
