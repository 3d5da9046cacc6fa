"""The typed schema of every config option: one dataclass per config group option, each field
typed and carrying the range or choices it accepts (`spec`). A dataset's dataclass lives with
its Task (`tpri.data`, `Task.Options`); the models' and optimizers' are here.

Hydra validates the YAML files of `conf/` against these dataclasses (the "schema + YAML"
pattern: each YAML file starts with `defaults: [/schema/<group>/<option>@_here_]`), so
OmegaConf rejects a wrong type, an unknown key or a null where a value is required, naming
the full key. `tpri.configs.rules.check_config` reads the same fields to check plain dicts (the
library path, no Hydra) and adds ranges, finiteness and combinations. The YAML files hold the
commented defaults; fields without a default here must be given by a YAML file.
"""

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Optional

from omegaconf import MISSING

from tpri.algorithm.models import ACTIVATIONS
from tpri.algorithm.tp import TARGETS, UPDATES
from tpri.configs.build import STEPS
from tpri.data import TASKS
from tpri.spec import Spec, seed, size, spec  # noqa: F401 (Spec: re-exported)

DEVICES = ("auto", "cpu", "cuda")


# --- model/ ---------------------------------------------------------------------------------


@dataclass
class RNN:
    name: str = spec(choices=("rnn",))
    hidden: int = size()
    activation: str = spec(choices=ACTIVATIONS)


@dataclass
class GRU:
    name: str = spec(choices=("gru",))
    hidden: int = size()


@dataclass
class TextRNN:
    name: str = spec(choices=("rnn_text",))
    hidden: int = size()
    embedding_dim: int = size()
    freeze_embedding: bool = MISSING
    activation: str = spec(choices=ACTIVATIONS)


# --- optimizer/ -----------------------------------------------------------------------------


def _lr() -> Any:
    return spec(gt=0)


def _momentum() -> Any:
    return spec(ge=0, lt=1)


@dataclass
class SGD:
    name: str = spec(choices=("sgd",))
    step: str = spec(choices=STEPS)
    lr: float = _lr()
    momentum: float = _momentum()
    nesterov: bool = MISSING


@dataclass
class Adam:
    name: str = spec(choices=("adam",))
    step: str = spec(choices=("adam",))
    lr: float = _lr()


@dataclass
class TP:
    name: str = spec(choices=("tp",))
    lr_target: float = spec(ge=0)
    reg: float = spec(ge=0)
    targets: str = spec(choices=TARGETS)
    update: str = spec(choices=UPDATES)
    per_step: str = spec(choices=("tpri", "authors"))
    step: str = spec(choices=STEPS)
    lr: float = _lr()
    momentum: float = _momentum()
    nesterov: bool = MISSING


@dataclass
class DTP:
    name: str = spec(choices=("dtp",))
    variant: str = spec(choices=("authors", "separate"))
    lr_target: float = spec(ge=0)
    lr_reverse: float = spec(ge=0)
    noise: float = spec(ge=0)
    update: str = spec(choices=UPDATES)
    step: str = spec(choices=STEPS)
    lr: float = _lr()
    momentum: float = _momentum()
    nesterov: bool = MISSING


# --- the top level (conf/config.yaml) -------------------------------------------------------


@dataclass
class Config:
    dataset: Any = MISSING  # config groups: their own schema applies
    model: Any = MISSING
    optimizer: Any = MISSING
    seed: int = seed()
    lr: float = _lr()
    reg: float = spec(ge=0)
    lr_target: float = spec(ge=0)
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
    logger: Any = None
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
    "model": {"rnn": RNN, "gru": GRU, "rnn_text": TextRNN},
    "optimizer": {"sgd": SGD, "adam": Adam, "tp": TP, "dtp": DTP},
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
