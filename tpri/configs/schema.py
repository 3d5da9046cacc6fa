"""The typed schema of every config option: one dataclass per config group option, each field
typed and carrying the range or choices it accepts (`spec`). Each option's fields are declared by
its owner: a dataset's Task (`Task.Options`, tpri.data), a model (`RNN.Options`), an update
direction (`TargetProp.Options`) and its step (`tpri.algorithm.steps`); this module joins them
under the option's name (the registries `tpri.data.TASKS`, `tpri.configs.build.MODELS` and
`OPTIMIZERS`) and declares the top-level keys.

Hydra validates the YAML files of `conf/` against these dataclasses (the "schema + YAML"
pattern: each YAML file starts with `defaults: [/schema/<group>/<option>@_here_]`), so
OmegaConf rejects a wrong type, an unknown key or a null where a value is required, naming
the full key. `tpri.configs.rules.check_config` reads the same fields to check plain dicts (the
library path, no Hydra) and adds ranges, finiteness and combinations. The YAML files hold the
commented defaults; fields without a default here must be given by a YAML file.
"""

import dataclasses
import typing
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Optional

from omegaconf import MISSING

from tpri.algorithm.steps import Step
from tpri.algorithm.tp import TargetPropOptions
from tpri.configs.build import MODELS, OPTIMIZERS
from tpri.data import TASKS
from tpri.spec import Spec, same_as, seed, size, spec  # noqa: F401 (Spec: re-exported)

DEVICES = ("auto", "cpu", "cuda")


def option(name: str, *parts: type) -> type:
    """The schema of the config group option `name`: its `name` field, then the fields of the
    owners' options dataclasses `parts` (a model's; a direction's and its step's)."""
    fields = [("name", str, spec(choices=(name,)))]
    for part in parts:
        hints = typing.get_type_hints(part)
        fields += [(f.name, hints[f.name], _copy(f)) for f in dataclasses.fields(part)]
    title = "".join(word.capitalize() for word in name.split("_"))
    return dataclasses.make_dataclass(f"{title}Options", fields)


def _copy(entry: dataclasses.Field) -> Any:
    """A new field with the default and the spec of `entry`."""
    if entry.default_factory is not dataclasses.MISSING:
        return dataclasses.field(default_factory=entry.default_factory, metadata=entry.metadata)
    return dataclasses.field(default=entry.default, metadata=entry.metadata)


# --- the top level (conf/config.yaml) -------------------------------------------------------


@dataclass
class Config:
    dataset: Any = MISSING  # config groups: their own schema applies
    model: Any = MISSING
    optimizer: Any = MISSING
    seed: int = seed()
    lr: float = same_as(Step, "lr")  # the values optimizer.lr, .reg, .lr_target follow
    reg: float = same_as(TargetPropOptions, "reg")
    lr_target: float = same_as(TargetPropOptions, "lr_target")
    max_iter: int = size()
    batch_size: int = size()
    eval_every: int = size()
    checkpoint_every: int = spec(ge=0)
    device: str = spec(choices=DEVICES)
    threads: int = spec(ge=0)
    log_gradients: bool = MISSING
    log_cosine: bool = MISSING
    # divergence (tpri/run/divergence.py): the paper's loss rule checked every N iterations
    # (0: at every evaluation); tpri's extra rule |W|_F > diverge_weight_norm (null: off)
    diverge_check_every: int = spec(0, ge=0)
    diverge_weight_norm: Optional[float] = spec(1.0e3, gt=0)
    # experiment tracking: null or {tracker name: its options} (checked by the tracking layer)
    logger: Any = spec(
        None, test=lambda v: v is None or isinstance(v, dict), text="null or a mapping {tracker: options}"
    )
    # the step size a paper-figure sweep tunes (experiment winner_tp / winner_bp)
    tuned_lr: Optional[float] = spec(None, gt=0)
    # true: train the job in its dir again from iteration 0, its checkpoint set aside
    restart: bool = spec(False)


class DatasetOptions(Mapping):
    """Dataset name -> its options dataclass, read live from the registry `tpri.data.TASKS`
    (each Task class owns its schema, `Task.Options`)."""

    def __getitem__(self, name: str) -> type:
        return TASKS[name].Options

    def __iter__(self) -> Iterator[str]:
        return iter(TASKS)

    def __len__(self) -> int:
        return len(TASKS)


GROUPS: dict[str, Mapping[str, type]] = {
    "dataset": DatasetOptions(),
    "model": {name: option(name, cls.Options) for name, cls in MODELS.items()},
    "optimizer": {name: option(name, cls.Options, step) for name, (cls, step) in OPTIMIZERS.items()},
}
# top-level keys that need not be given (their schema default applies)
OPTIONAL_KEYS = ("diverge_check_every", "diverge_weight_norm", "logger", "tuned_lr")
UNSET_OPTIONAL = ("logger", "tuned_lr")  # null means "not set": left out of a job's config


def register_configs() -> None:
    """Store the schemas in Hydra's ConfigStore: `schema/<group>/<option>` and `schema/config`
    (idempotent; call before composing conf/)."""
    from hydra.core.config_store import ConfigStore

    store = ConfigStore.instance()
    store.store(group="schema", name="config", node=Config)
    for group, options in GROUPS.items():
        for option, node in options.items():
            store.store(group=f"schema/{group}", name=option, node=node)
