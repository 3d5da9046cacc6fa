"""Checks of a whole config (a plain dict, as composed from conf/), before anything is written.

`check_config(cfg)` raises `ConfigError` with one line naming the full key, the value and what
is accepted: the types, ranges and choices of the typed schema (`tpri.schema`), finiteness of
every float, unknown keys, and the options that only make sense together. `check_resources(cfg)`
refuses a job whose estimated memory exceeds what is available, or more threads than CPUs.
Neither needs Hydra, so the library path `tpri.run.run(cfg_dict, dir)` uses them too.
"""

from __future__ import annotations

import dataclasses
import math
import typing

import numpy as np
from omegaconf import DictConfig, OmegaConf

from tpri.budget import Budget, here, memory_here
from tpri.resources import estimate_memory, peak
from tpri.schema import GROUPS, OPTIONAL_KEYS, UNSET_OPTIONAL, Config, Spec


def plain_config(cfg) -> dict:
    """A composed config (DictConfig, or a dict already) as a plain, resolved dict without
    Hydra's node; a missing value raises. The schema's optional keys left unset (logger,
    tuned_lr: null) are left out, as in conf/, so they never count as a change on resume."""
    if isinstance(cfg, DictConfig):
        keys = [k for k in cfg if k != "hydra" and not (k in UNSET_OPTIONAL and cfg[k] is None)]
        cfg = OmegaConf.to_container(OmegaConf.masked_copy(cfg, keys), resolve=True, throw_on_missing=True)
    return {k: v for k, v in dict(cfg).items() if k != "hydra"}


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


def check_value(key: str, value, annotation, spec: Spec) -> None:
    """Raise ConfigError unless `value` fits its schema field: the type `annotation`
    (int, float, bool, str, Optional[...]) and `spec` (range, choices)."""
    kind, nullable = field_kind(annotation)
    if value is None and nullable:
        return
    ok = _type_ok(kind, value) and (not spec.choices or value in spec.choices)
    if ok and kind in (int, float):
        ok = _in_range(spec, value) and (kind is int or _in_range(spec, _as_float32(value)))
    if not ok:
        raise ConfigError(f"{key}={show(value)} is invalid; expected {accepted(kind, nullable, spec)}")


def check_section(prefix: str, section: dict, schema: type, optional=()) -> None:
    """Check every key of `section` against the dataclass `schema`: unknown keys, missing
    keys, then each value."""
    fields = {f.name: f for f in dataclasses.fields(schema)}
    hints = typing.get_type_hints(schema)
    for key in section:
        if key not in fields:
            raise ConfigError(f"{prefix}{key}: unknown key; accepted: {sorted(fields)}")
    for name, field in fields.items():
        if name in GROUPS and schema is Config:
            continue
        spec = field.metadata.get("spec", Spec())
        if name not in section:
            if name in optional:
                continue
            raise ConfigError(f"{prefix}{name}: missing; expected {accepted(*field_kind(hints[name]), spec)}")
        check_value(prefix + name, section[name], hints[name], spec)


# --- the whole config -----------------------------------------------------------------------


def check_config(cfg: dict) -> None:
    """Raise ConfigError naming the first bad key, its value and what is accepted."""
    if not isinstance(cfg, dict):
        raise ConfigError(f"config: expected a mapping of keys to values, got {type(cfg).__name__}")
    for group, options in GROUPS.items():
        section = cfg.get(group)
        if not isinstance(section, dict):
            raise ConfigError(
                f"{group}: no option chosen ({group}={show(section)}); choose one "
                f"with {group}=NAME, NAME one of {sorted(options)}"
            )
        name = section.get("name")
        if name not in options:
            raise ConfigError(f"{group}.name={name!r} is invalid; expected one of {sorted(options)}")
    check_section("", {k: v for k, v in cfg.items() if k not in GROUPS}, Config, OPTIONAL_KEYS)
    if cfg.get("logger") is not None and not isinstance(cfg["logger"], dict):
        raise ConfigError(
            f"logger={cfg['logger']!r} is invalid; expected null or a mapping {{tracker: options}}"
        )
    for group, options in GROUPS.items():
        check_section(f"{group}.", cfg[group], options[cfg[group]["name"]])
    for rule in RULES:
        rule(cfg)


def show(value) -> str:
    """A value as the command line writes it: null, true, 0.1, 'abc'."""
    if value is None or isinstance(value, bool):
        return {None: "null", True: "true", False: "false"}[value]
    return repr(value)


# --- options that only make sense together ------------------------------------------------


def _optimizer_step(cfg: dict) -> None:
    opt = cfg["optimizer"]
    momentum, nesterov = opt.get("momentum", 0.0), opt.get("nesterov", False)
    if opt["step"] == "adam" and (momentum or nesterov):
        key, value = ("momentum", momentum) if momentum else ("nesterov", nesterov)
        raise ConfigError(
            f"optimizer.{key}={show(value)} does not apply to optimizer.step=adam (Adam has no "
            f"momentum); set optimizer.momentum=0 and optimizer.nesterov=false, or optimizer.step=sgd"
        )
    if nesterov and momentum == 0:
        raise ConfigError("optimizer.nesterov=true needs optimizer.momentum > 0 (got optimizer.momentum=0)")


def _text_pairs(cfg: dict) -> None:
    dataset, model = cfg["dataset"]["name"], cfg["model"]["name"]
    if model == "rnn_text" and dataset != "ptb":
        raise ConfigError(
            f"model=rnn_text reads token ids: it needs a text dataset (dataset=ptb), got dataset={dataset}"
        )
    if dataset == "ptb" and model != "rnn_text":
        raise ConfigError(
            f"dataset=ptb gives token ids and a target at every step: it needs "
            f"model=rnn_text, got model={model}"
        )


def _target_propagation(cfg: dict) -> None:
    optimizer, model = cfg["optimizer"]["name"], cfg["model"]
    if optimizer not in ("tp", "dtp"):
        return
    if model.get("activation") == "relu":
        raise ConfigError(
            f"model.activation='relu' is BP-only: optimizer={optimizer} inverts the "
            "activation; accepted: ['tanh', 'identity']"
        )
    if optimizer == "tp" and model["name"] == "gru" and cfg["optimizer"]["targets"] != "linearized":
        raise ConfigError(
            f"optimizer.targets={cfg['optimizer']['targets']!r} is not available for "
            "model=gru; accepted: ['linearized']"
        )
    if optimizer == "dtp" and model["name"] == "rnn_text":
        raise ConfigError(
            "optimizer=dtp trains sequence-to-label models (model=rnn or gru); "
            "use optimizer=tp for model=rnn_text"
        )


def _windows_fit(length: int, windows) -> bool:
    return all(math.ceil(hi * length) > math.ceil(lo * length) for lo, hi in windows)


# the marker windows of the synthetic tasks (tpri.data.synthetic), as fractions of T
TEMPORAL_ORDER_WINDOWS = ((0.1, 0.2), (0.5, 0.6), (0.6, 0.7))
ADDING_WINDOWS = ((0.0, 0.1), (0.1, 0.5))
DIGITS_IMAGES, DIGITS_CLASSES = 1797, 10


def _dataset_shape(cfg: dict) -> None:
    data = cfg["dataset"]
    name = data["name"]
    if name in ("temporal_order", "adding"):
        windows = (
            TEMPORAL_ORDER_WINDOWS[: 2 if data.get("bits") == 1 else 3]
            if name == "temporal_order"
            else ADDING_WINDOWS
        )
        shortest = next(t for t in range(1, 1000) if _windows_fit(t, windows))
        if data["length"] < shortest or not _windows_fit(data["length"], windows):
            raise ConfigError(
                f"dataset.length={data['length']} is too short for the marker "
                f"windows of {name}; expected an integer >= {shortest}"
            )
    steps = _pixel_steps(data)
    if steps and steps % data["size_chunk"]:
        divisors = [d for d in range(1, steps + 1) if steps % d == 0]
        raise ConfigError(
            f"dataset.size_chunk={data['size_chunk']} must divide the {steps} "
            f"steps of a sequence; accepted: {divisors}"
        )
    if name == "digits":
        n_test = math.ceil(data["test_fraction"] * DIGITS_IMAGES)
        if min(n_test, DIGITS_IMAGES - n_test) < DIGITS_CLASSES:
            raise ConfigError(
                f"dataset.test_fraction={data['test_fraction']} leaves fewer than "
                f"{DIGITS_CLASSES} of the {DIGITS_IMAGES} images on one side of the "
                "split; expected a number in [0.006, 0.994]"
            )
    if name == "cifar10" and data["grayscale"] and data["channels_as_steps"]:
        raise ConfigError(
            "dataset.grayscale=true and dataset.channels_as_steps=true exclude "
            "each other; set one of them to false"
        )
    if name == "ptb":
        for key in ("n_tokens", "n_test_tokens"):
            if data[key] is not None and data[key] < data["length"] + 1:
                raise ConfigError(
                    f"dataset.{key}={data[key]} is too small for one sequence of "
                    f"dataset.length={data['length']}; expected null or an "
                    f"integer >= {data['length'] + 1}"
                )


def _pixel_steps(data: dict) -> int:
    """The steps of an image read one pixel (or value) at a time; 0 for other datasets."""
    name = data["name"]
    if name == "cifar10":
        return 3072 if data["channels_as_steps"] else 1024
    return {"digits": 64, "mnist": 784, "fashion_mnist": 784}.get(name, 0)


RULES = (_optimizer_step, _text_pairs, _target_propagation, _dataset_shape)


# --- resources ------------------------------------------------------------------------------


def available_memory() -> int:
    """Bytes of memory this process may use (tpri.budget.memory_here: TPRI_MEMORY_LIMIT, the
    SLURM allocation or cgroup limit, MemAvailable)."""
    return memory_here()[0]


def check_resources(cfg: dict, available: int | None = None, budget: Budget | None = None) -> None:
    """Refuse a job (checked by check_config) whose estimated peak memory exceeds what it gets,
    more threads than its CPUs, or a GPU it will not have. `budget`: what the job gets (default:
    this process's allocation or machine, tpri.budget.here()); `available` overrides its bytes.
    Allocates nothing."""
    budget = budget or here()
    if available is not None:
        budget = budget._replace(memory=available, memory_from="available")
    cpus = budget.cpus
    if cpus is not None and cfg["threads"] > cpus:
        raise ConfigError(
            f"threads={cfg['threads']} is more than the {cpus} CPUs {budget.cpus_from}; "
            f"expected an integer in [0, {cpus}] (0: torch's default)"
        )
    parts = estimate_memory(cfg)
    total = peak(parts)
    _check_gpu(cfg, parts, budget.gpus)
    if budget.memory is not None and total > budget.memory:
        part = max(parts, key=parts.get)
        raise ConfigError(
            f"memory: this job needs about {_gb(total)} ({part} {_gb(parts[part])}), "
            f"more than the {_gb(budget.memory)} {budget.memory_from}; shrink {SHRINK[part](cfg)}"
        )


def _check_gpu(cfg: dict, parts: dict[str, int], gpus: int | None) -> None:
    """device=cuda needs CUDA; on a GPU, the parameters and one step must fit its memory.
    `gpus`: the GPUs a launcher gives the job (None: this machine's, as torch sees them)."""
    import torch

    if gpus is not None:  # the job runs elsewhere: its GPU is not this machine's
        if cfg["device"] == "cuda" and gpus == 0:
            raise ConfigError(
                "device='cuda' was asked for but the launcher gives a job no GPU "
                "(hydra.launcher.gpus_per_node=0); set it to 1, or device=auto or cpu"
            )
        return
    if cfg["device"] == "cuda" and not torch.cuda.is_available():
        raise ConfigError(
            "device='cuda' was asked for but CUDA is not available; accepted here: ['auto', 'cpu']"
        )
    if cfg["device"] == "cpu" or not torch.cuda.is_available():
        return
    need = parts["parameters"] + max(parts["training batch"], parts["evaluation"])
    have = torch.cuda.get_device_properties(0).total_memory
    if need > have:
        raise ConfigError(
            f"memory: this job needs about {_gb(need)} on the GPU, more than its "
            f"{_gb(have)}; shrink {SHRINK['training batch'](cfg)} or use device=cpu"
        )


def _gb(n: float) -> str:
    return f"{n / 1e9:.1f} GB" if n >= 1e8 else f"{n / 1e6:.1f} MB"


SHRINK = {  # the keys that size each part of the estimate
    "parameters": lambda cfg: _keys(cfg, "model.hidden", "model.embedding_dim"),
    "training batch": lambda cfg: _keys(
        cfg, "batch_size", "dataset.length", "model.hidden", "dataset.size_chunk"
    ),
    "evaluation": lambda cfg: _keys(
        cfg,
        "dataset.test_size",
        "dataset.eval_size",
        "dataset.n_test_tokens",
        "dataset.length",
        "model.hidden",
    ),
    "dataset": lambda cfg: _keys(
        cfg, "dataset.n_train", "dataset.n_tokens", "dataset.test_size", "dataset.eval_size", "dataset.length"
    ),
}


def _keys(cfg: dict, *keys: str) -> str:
    """The keys among `keys` that the config has, with their values."""
    shown = []
    for key in keys:
        group, _, name = key.rpartition(".")
        section = cfg[group] if group else cfg
        if name in section:
            shown.append(f"{key}={section[name]}")
    return ", ".join(shown)
