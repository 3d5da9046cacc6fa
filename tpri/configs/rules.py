"""Checks of a whole config (a plain dict, as composed from conf/), before anything is written.

`check_config(cfg)` raises `ConfigError` with one line naming the full key, the value and what
is accepted: the types, ranges and choices of the typed schema (`tpri.configs.schema`), finiteness of
every float, unknown keys, and the options that only make sense together. `check_resources(cfg)`
refuses a job whose estimated memory exceeds what is available, or more threads than CPUs.
Neither needs Hydra, so the library path `tpri.run.run(cfg_dict, dir)` uses them too.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import numpy as np
from omegaconf import DictConfig, OmegaConf

from tpri.configs.budget import Budget, here, memory_here
from tpri.configs.build import DIRECTIONS, MODELS, check_step
from tpri.configs.resources import estimate_memory, peak
from tpri.configs.schema import DEVICES, GROUPS, OPTIONAL_KEYS, UNSET_OPTIONAL, Config
from tpri.data import TASKS
from tpri.spec import ConfigError, accepted, check_choice, check_section, check_value, field_kind, show

__all__ = [  # the checks of one value live in tpri.spec; re-exported for the callers here
    "ConfigError",
    "accepted",
    "check_config",
    "check_resources",
    "check_section",
    "check_overrides",
    "check_value",
    "field_kind",
    "plain_config",
    "show",
]


def plain_config(cfg) -> dict:
    """A composed config as a plain, resolved dict without Hydra's node: a DictConfig, or a
    mapping such as `python train.py --cfg job` prints (its `${lr}`-style interpolations are
    resolved; numpy scalars become Python numbers). A missing value or an interpolation that
    cannot be resolved raises ConfigError naming the key; anything but a mapping, TypeError.
    The schema's optional keys left unset (logger, tuned_lr: null) are left out, as in conf/,
    so they never count as a change on resume."""
    if isinstance(cfg, DictConfig):
        keys = [k for k in cfg if k != "hydra"]
        cfg = _resolved(OmegaConf.masked_copy(cfg, keys))
    elif isinstance(cfg, Mapping):
        cfg = python_values({k: v for k, v in cfg.items() if k != "hydra"})
        if _has_interpolation(cfg):
            cfg = _resolved(cfg)
    else:
        raise TypeError(
            f"cfg must be a mapping of config keys to values (a dict, or the DictConfig "
            f"Hydra composes; `python train.py --cfg job` prints one), got {type(cfg).__name__}"
        )
    return {k: v for k, v in cfg.items() if k != "hydra" and not (k in UNSET_OPTIONAL and v is None)}


def _resolved(cfg) -> dict:
    from omegaconf.errors import OmegaConfBaseException

    try:
        node = cfg if isinstance(cfg, DictConfig) else OmegaConf.create(cfg)
        return OmegaConf.to_container(node, resolve=True, throw_on_missing=True)
    except OmegaConfBaseException as err:
        key = getattr(err, "full_key", None) or "config"
        message = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise ConfigError(f"{key}: {message}") from None


def _has_interpolation(value) -> bool:
    if isinstance(value, dict):
        return any(_has_interpolation(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return any(_has_interpolation(v) for v in value)
    return isinstance(value, str) and "${" in value


def python_values(value):
    """`value` with numpy scalars as the Python numbers they hold (recursively through dicts,
    lists and tuples); everything else as it is."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Mapping):
        return {k: python_values(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [python_values(v) for v in value]
    return value


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
        check_choice(f"{group}.name", section.get("name"), sorted(options))
    check_section("", {k: v for k, v in cfg.items() if k not in GROUPS}, Config, OPTIONAL_KEYS, skip=GROUPS)
    for group, options in GROUPS.items():
        check_section(f"{group}.", cfg[group], options[cfg[group]["name"]])
    for rule in RULES:
        rule(cfg)


# --- options that only make sense together ------------------------------------------------


def _owner_rule(check, *args) -> None:
    """Run a rule its owner (a Task, a model, a direction, the optimizer builder) defines,
    as a ConfigError."""
    try:
        check(*args)
    except ConfigError:
        raise
    except ValueError as e:
        raise ConfigError(str(e)) from None


def _optimizer_step(cfg: dict) -> None:
    _owner_rule(check_step, cfg["optimizer"])


def _inputs(cfg: dict) -> None:
    """A model reading token ids needs a dataset of token ids, and the other way round."""
    dataset, model = cfg["dataset"]["name"], cfg["model"]["name"]
    if TASKS[dataset].token_inputs == MODELS[model].token_inputs:
        return
    texts = [name for name, task in TASKS.items() if task.token_inputs]
    text_models = [name for name, cls in MODELS.items() if cls.token_inputs]
    if MODELS[model].token_inputs:
        raise ConfigError(
            f"model={model} reads token ids: it needs a text dataset "
            f"(dataset={' or '.join(texts)}), got dataset={dataset}"
        )
    raise ConfigError(
        f"dataset={dataset} gives token ids and a target at every step: it needs "
        f"model={' or '.join(text_models)}, got model={model}"
    )


def _direction(cfg: dict) -> None:
    model, optimizer = cfg["model"], cfg["optimizer"]
    direction = DIRECTIONS[optimizer["name"]]
    _owner_rule(direction.check_rules, optimizer, "optimizer.")
    _owner_rule(direction.check_model, MODELS[model["name"]], model, optimizer)


def _dataset(cfg: dict) -> None:
    _owner_rule(TASKS[cfg["dataset"]["name"]].check_rules, cfg["dataset"])


def _top_level_values(cfg: dict) -> None:
    """A key of the optimizer group that is also a top-level key (lr, reg, lr_target: conf/
    optimizer/*.yaml set them to `${lr}` etc.) takes the top-level value, which the record,
    the collected tables and the figures show: set directly to another value it is refused."""
    top = {f.name for f in dataclasses.fields(Config)} - set(GROUPS)
    for key, value in cfg["optimizer"].items():
        if key in top and key in cfg and value != cfg[key]:
            raise ConfigError(
                f"optimizer.{key}={show(value)} differs from the top-level {key}={show(cfg[key])} "
                f"it follows (optimizer.{key}: ${{{key}}}); set {key}={show(value)} instead"
            )


def _tuned_lr(cfg: dict) -> None:
    """tuned_lr only acts through a key that takes its value (experiment=winner_tp sets
    lr_target: ${tuned_lr}, winner_bp lr: ${tuned_lr}); set while no key used it, jobs that
    differ only in tuned_lr would train identically and be recorded as different."""
    tuned = cfg.get("tuned_lr")
    if tuned is None:
        return
    used = [cfg["lr"], cfg["optimizer"].get("lr_target", cfg["lr"])]
    if tuned not in used:
        raise ConfigError(
            f"tuned_lr={show(tuned)} has no effect here: no key takes its value (the experiments "
            "winner_tp and winner_bp set lr_target or lr to ${tuned_lr}); remove tuned_lr or "
            "choose one of those experiments"
        )


def check_overrides(cfg: dict, overrides: list[str]) -> None:
    """Refuse a top-level key given on the command line that the chosen optimizer does not
    read (reg or lr_target with a BP optimizer): the job would train as without it while
    its record says otherwise. `cfg` is checked by check_config."""
    optimizer = cfg["optimizer"]["name"]
    for override in overrides:
        key, _, value = override.partition("=")
        key = key.lstrip("+~")
        readers = _readers(key)
        if readers and optimizer not in readers:
            raise ConfigError(
                f"{key}={value} has no effect with optimizer={optimizer} (only optimizer="
                f"{' or '.join(readers)} reads it); remove it or choose one of those optimizers"
            )


def _readers(key: str) -> list[str]:
    """The optimizer options that take the top-level `key` (one whose group option has a
    field of that name); [] for a key every option or none reads."""
    if key not in {f.name for f in dataclasses.fields(Config)}:
        return []
    options = GROUPS["optimizer"]
    readers = sorted(
        n for n, schema in options.items() if key in {f.name for f in dataclasses.fields(schema)}
    )
    return readers if 0 < len(readers) < len(options) else []


RULES = (_optimizer_step, _inputs, _direction, _dataset, _top_level_values, _tuned_lr)


# --- resources ------------------------------------------------------------------------------


def available_memory() -> int:
    """Bytes of memory this process may use (tpri.configs.budget.memory_here: TPRI_MEMORY_LIMIT, the
    SLURM allocation or cgroup limit, MemAvailable)."""
    return memory_here()[0]


def check_resources(cfg: dict, available: int | None = None, budget: Budget | None = None) -> None:
    """Refuse a job (checked by check_config) whose estimated peak memory exceeds what it gets,
    more threads than its CPUs, or a GPU it will not have. `budget`: what the job gets (default:
    this process's allocation or machine, tpri.configs.budget.here()); `available` overrides its bytes.
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
        part = max(SHRINK.keys() & parts.keys(), key=parts.get)
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
    check_device_here(cfg["device"])
    if cfg["device"] == "cpu" or not torch.cuda.is_available():
        return
    need = parts["parameters"] + max(parts["training batch"], parts["evaluation"])
    have = torch.cuda.get_device_properties(0).total_memory
    if need > have:
        raise ConfigError(
            f"memory: this job needs about {_gb(need)} on the GPU, more than its "
            f"{_gb(have)}; shrink {SHRINK['training batch'](cfg)} or use device=cpu"
        )


def check_device_here(device: str) -> None:
    """ConfigError when `device` (a choice of the config key `device`) is cuda and torch sees
    no CUDA on this machine (the preflight check and the job's own, at start)."""
    import torch

    if device == "cuda" and not torch.cuda.is_available():
        here = [d for d in DEVICES if d != "cuda"]
        raise ConfigError(f"device='cuda' was asked for but CUDA is not available; accepted here: {here}")


def _gb(n: float) -> str:
    return f"{n / 1e9:.1f} GB" if n >= 1e8 else f"{n / 1e6:.1f} MB"


SHRINK = {  # the keys that size each part of the estimate
    "parameters": lambda cfg: _keys(cfg, "model.hidden", "model.embedding_dim"),
    "training batch": lambda cfg: _keys(
        cfg, "batch_size", "dataset.length", "model.hidden", "dataset.size_chunk"
    ),
    # one chunk (tpri.data.base.eval_chunk) of states and predictions, and the kept displacements;
    # the sets' sizes matter only below one chunk
    "evaluation": lambda cfg: _keys(
        cfg,
        "dataset.length",
        "model.hidden",
        "model.embedding_dim",
        "batch_size",
        "dataset.test_size",
        "dataset.eval_size",
        "dataset.n_test_tokens",
    ),
    "dataset": lambda cfg: _keys(
        cfg, "dataset.n_train", "dataset.n_tokens", "dataset.test_size", "dataset.eval_size", "dataset.length"
    ),
}


def out_of_memory_hint(cfg: dict) -> str:
    """What to shrink when a job ran out of memory: the keys that size a training step, then
    those of an evaluation (tpri.data.base.eval_chunk sequences at a time) and of the dataset."""
    keys = []
    for part in ("training batch", "evaluation", "dataset"):
        keys += [k for k in SHRINK[part](cfg).split(", ") if k and k not in keys]
    return f"shrink one of {', '.join(keys)}"


def is_out_of_memory(err: BaseException) -> bool:
    """A failed allocation: MemoryError, CUDA's OutOfMemoryError, or torch's CPU allocator's
    RuntimeError."""
    if isinstance(err, MemoryError) or type(err).__name__ == "OutOfMemoryError":
        return True
    return isinstance(err, RuntimeError) and "can't allocate memory" in str(err)


def _keys(cfg: dict, *keys: str) -> str:
    """The keys among `keys` that the config has, with their values."""
    shown = []
    for key in keys:
        group, _, name = key.rpartition(".")
        section = cfg[group] if group else cfg
        if name in section:
            shown.append(f"{key}={section[name]}")
    return ", ".join(shown)
