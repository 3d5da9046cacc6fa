"""What an option accepts, and the check of one value or one section against it.

A field of an options dataclass carries its range or choices in its metadata (`spec(...)`);
`check_section(prefix, options, dataclass)` checks a mapping of options against every field
and raises `ConfigError` with one line naming the full key, the value and what is accepted.
`check_arguments(arguments, *dataclasses)` applies the same fields to a constructor's
arguments, worded for a library call ("lr_target must be ..., got ...").

The owner of the options declares them once: a dataset's Task (`Task.Options`), a model
(`RNN.Options`), an update direction (`TargetProp.Options`), the optimizer's step
(`tpri.algorithm.steps`), a tracker (`tpri.run.trackers`). Its constructor and the config
check (`tpri.configs.rules`, Hydra through `tpri.configs.schema`) read the same fields, so each
rule is written once. No torch, no Hydra.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
from omegaconf import MISSING

SEED_MAX = 2**32 - 1  # the widest range every consumer of a seed accepts (scikit-learn)


@dataclass(frozen=True)
class Spec:
    """What a field accepts beyond its type: bounds (open or closed), choices; or, for a value
    the scalar types do not describe (a mapping, a list), a `test` and its `text`."""

    ge: float | None = None  # value >= ge
    gt: float | None = None  # value > gt
    le: float | None = None
    lt: float | None = None
    choices: tuple = ()
    test: Callable[[Any], bool] | None = None  # replaces the type test of a non-null value
    text: str = ""  # what is accepted, in words (replaces the text made from the rest)


def spec(default: Any = MISSING, **accepted) -> Any:
    """A dataclass field with what it accepts in its metadata (read by check_section); a
    mutable default (dict, list) is copied for each instance."""
    metadata = {"spec": Spec(**accepted)}
    if isinstance(default, (dict, list)):
        return field(default_factory=lambda: type(default)(default), metadata=metadata)
    return field(default=default, metadata=metadata)


def same_as(schema: type, name: str, default: Any = MISSING) -> Any:
    """A field accepting what field `name` of the dataclass `schema` accepts (one rule, two keys:
    the top-level `reg` and `optimizer.reg`)."""
    return field(default=default, metadata={"spec": field_spec(schema, name)})


def field_spec(schema: type, name: str) -> Spec:
    """The Spec of field `name` of the dataclass `schema` (an empty one when it has none)."""
    return schema.__dataclass_fields__[name].metadata.get("spec", Spec())


def seed() -> Any:
    """A seed field."""
    return spec(ge=0, le=SEED_MAX)


def size() -> Any:
    """A count field (>= 1)."""
    return spec(ge=1)


@dataclass
class Seeded:
    """The `seed` argument of a constructor that draws random numbers (DTP's reverse layer)."""

    seed: int = seed()


class ConfigError(ValueError):
    """A configuration value is missing, of the wrong type or out of range."""


# --- one value against its schema field ----------------------------------------------------


def field_kind(annotation) -> tuple[type, bool]:
    """(base type, nullable) of a field annotation such as int or Optional[int]."""
    args = typing.get_args(annotation)
    if type(None) in args:
        return next(a for a in args if a is not type(None)), True
    return annotation, False


def _bound_text(spec: Spec) -> str:
    parts = [
        f"{op} {_num(v)}"
        for op, v in ((">=", spec.ge), (">", spec.gt), ("<=", spec.le), ("<", spec.lt))
        if v is not None
    ]
    if len(parts) == 2:  # an interval: "in [0, 1)"
        low = "[" if spec.ge is not None else "("
        high = "]" if spec.le is not None else ")"
        lo, hi = (spec.ge if spec.ge is not None else spec.gt), (spec.le if spec.le is not None else spec.lt)
        return f" in {low}{_num(lo)}, {_num(hi)}{high}"
    return f" {parts[0]}" if parts else ""


def _num(v: float) -> str:
    return str(v) if isinstance(v, int) else f"{v:g}"


def accepted(kind: type, nullable: bool, spec: Spec) -> str:
    """What a field accepts, in words."""
    if spec.text:
        return spec.text
    if spec.choices:
        text = f"one of {list(spec.choices)}"
    elif kind is bool:
        text = "true or false"
    elif kind is int:
        text = "an integer" + _bound_text(spec)
    elif kind is float:
        text = "a finite number" + _bound_text(spec) + " (float32)"
    elif kind is str:
        text = "a non-empty string"
    else:
        text = "any value"
    return text + (" or null" if nullable else "")


FLOAT32_MAX = 3.4028234663852886e38


def _as_float32(value: float) -> float:
    """The value training sees (1e-320 becomes 0.0)."""
    return float(np.float32(value))


def _type_ok(kind: type, value) -> bool:
    if kind is bool:
        return isinstance(value, bool)
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if kind is float:  # training runs in float32: the value must survive the conversion
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        return number and math.isfinite(value) and abs(value) <= FLOAT32_MAX
    if kind is str:
        return isinstance(value, str) and value != ""
    return True


def _in_range(spec: Spec, v) -> bool:
    return (
        (spec.ge is None or v >= spec.ge)
        and (spec.gt is None or v > spec.gt)
        and (spec.le is None or v <= spec.le)
        and (spec.lt is None or v < spec.lt)
    )


def fits(value, annotation, spec: Spec) -> bool:
    """Whether `value` fits a field: the type `annotation` (int, float, bool, str,
    Optional[...]) and `spec` (range, choices, test)."""
    kind, nullable = field_kind(annotation)
    if value is None and nullable:
        return True
    if spec.test is not None:
        return spec.test(value)
    ok = _type_ok(kind, value) and (not spec.choices or value in spec.choices)
    if ok and kind in (int, float):
        ok = _in_range(spec, value) and (kind is int or _in_range(spec, _as_float32(value)))
    return ok


def check_value(key: str, value, annotation, spec: Spec) -> None:
    """Raise ConfigError ("KEY=VALUE is invalid; expected ...") unless `value` fits its field."""
    if not fits(value, annotation, spec):
        raise ConfigError(
            f"{key}={show(value)} is invalid; expected {accepted(*field_kind(annotation), spec)}"
        )


def check_choice(key: str, value, choices) -> None:
    """Raise ConfigError unless `value` is one of `choices` (a registry's names: a dataset,
    a model, an optimizer), in the words of `check_value`."""
    check_value(key, value, Any, Spec(choices=tuple(choices)))


def check_arguments(arguments: dict, *schemas: type) -> None:
    """Raise ValueError ("NAME must be ..., got VALUE") for the first of a constructor's
    `arguments` that does not fit its field in one of the dataclasses `schemas` (the owner's
    options): the rules of the config check, worded for a library call (a job names the
    config group in front of it)."""
    fields = {f.name: (schema, f) for schema in schemas for f in dataclasses.fields(schema)}
    for name, value in arguments.items():
        schema, entry = fields[name]
        annotation = typing.get_type_hints(schema)[name]
        spec = entry.metadata.get("spec", Spec())
        if not fits(value, annotation, spec):
            raise ValueError(f"{name} must be {accepted(*field_kind(annotation), spec)}, got {value!r}")


def check_section(prefix: str, section: dict, schema: type, optional=(), skip=()) -> None:
    """Check every key of `section` against the dataclass `schema`: unknown keys, missing
    keys (those in `optional` may be left out), then each value; fields in `skip` are not
    this section's (checked elsewhere)."""
    fields = {f.name: f for f in dataclasses.fields(schema) if f.name not in skip}
    hints = typing.get_type_hints(schema)
    for key in section:
        if key not in fields:
            raise ConfigError(unknown_key(prefix + key, fields))
    for name, entry in fields.items():
        spec = entry.metadata.get("spec", Spec())
        if name not in section:
            if name in optional:
                continue
            raise ConfigError(f"{prefix}{name}: missing; expected {accepted(*field_kind(hints[name]), spec)}")
        check_value(prefix + name, section[name], hints[name], spec)


def unknown_key(key: str, accepted_names) -> str:
    """The line for a key the schema does not have (the config check, Hydra's, the trackers')."""
    names = ", ".join(accepted_names)
    return f"{key}: unknown option; accepted: {names}" if names else f"{key}: unknown option"


def show(value) -> str:
    """A value as the command line writes it: null, true, 0.1, 'abc'."""
    if value is None or isinstance(value, bool):
        return {None: "null", True: "true", False: "false"}[value]
    return repr(value)
