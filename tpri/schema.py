"""The typed schema of every config option: one dataclass per config group option, each field
typed and carrying the range or choices it accepts (`spec`).

Hydra validates the YAML files of `conf/` against these dataclasses (the "schema + YAML"
pattern: each YAML file starts with `defaults: [/schema/<group>/<option>@_here_]`), so
OmegaConf rejects a wrong type, an unknown key or a null where a value is required, naming
the full key. `tpri.config.check_config` reads the same fields to check plain dicts (the
library path, no Hydra) and adds ranges, finiteness and combinations. The YAML files hold the
commented defaults; fields without a default here must be given by a YAML file.
"""

from dataclasses import dataclass, field
from typing import Any, Optional

from omegaconf import MISSING

SEED_MAX = 2**32 - 1  # the widest range every consumer of a seed accepts (scikit-learn)


@dataclass(frozen=True)
class Spec:
    """What a field accepts beyond its type: bounds (open or closed), choices, a seed."""

    ge: float | None = None  # value >= ge
    gt: float | None = None  # value > gt
    le: float | None = None
    lt: float | None = None
    choices: tuple = ()


def spec(default: Any = MISSING, **accepted) -> Any:
    """A dataclass field with what it accepts in its metadata (read by check_config)."""
    return field(default=default, metadata={"spec": Spec(**accepted)})


def _seed() -> Any:
    return spec(ge=0, le=SEED_MAX)


def _size() -> Any:
    return spec(ge=1)


ACTIVATIONS = ("tanh", "identity", "relu")
STEPS = ("sgd", "adam")
TARGETS = ("linearized", "difference", "inverse")
UPDATES = ("graph", "local")
DEVICES = ("auto", "cpu", "cuda")


# --- dataset/ -------------------------------------------------------------------------------


@dataclass
class TemporalOrder:
    name: str = spec(choices=("temporal_order",))
    length: int = _size()
    bits: int = spec(choices=(1, 3))
    variable_length: bool = MISSING
    test_size: int = _size()
    eval_size: int = _size()
    test_seed: int = _seed()


@dataclass
class Adding:
    name: str = spec(choices=("adding",))
    length: int = _size()
    variable_length: bool = MISSING
    test_size: int = _size()
    eval_size: int = _size()
    test_seed: int = _seed()


@dataclass
class Digits:
    name: str = spec(choices=("digits",))
    size_chunk: int = _size()
    test_fraction: float = spec(gt=0, lt=1)
    split_seed: int = _seed()
    permute: bool = MISSING
    permute_seed: int = _seed()
    normalize: bool = MISSING


@dataclass
class _PixelImages:
    """What every pixel-by-pixel image dataset takes."""

    data_dir: str = MISSING
    download: bool = MISSING
    permute: bool = MISSING
    permute_seed: int = _seed()
    size_chunk: int = _size()
    normalize: bool = MISSING
    n_train: Optional[int] = spec(ge=1)


@dataclass
class IdxImages(_PixelImages):  # mnist, fashion_mnist
    name: str = spec(choices=("mnist", "fashion_mnist"))


@dataclass
class Cifar10(_PixelImages):
    name: str = spec(choices=("cifar10",))
    grayscale: bool = MISSING
    channels_as_steps: bool = MISSING


@dataclass
class PTB:
    name: str = spec(choices=("ptb",))
    data_dir: str = MISSING
    download: bool = MISSING
    length: int = _size()
    n_tokens: Optional[int] = spec(ge=2)
    n_test_tokens: Optional[int] = spec(ge=2)


# --- model/ ---------------------------------------------------------------------------------


@dataclass
class RNN:
    name: str = spec(choices=("rnn",))
    hidden: int = _size()
    activation: str = spec(choices=ACTIVATIONS)


@dataclass
class GRU:
    name: str = spec(choices=("gru",))
    hidden: int = _size()


@dataclass
class TextRNN:
    name: str = spec(choices=("rnn_text",))
    hidden: int = _size()
    embedding_dim: int = _size()
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
    step: str = spec(choices=STEPS)
    lr: float = _lr()
    momentum: float = _momentum()
    nesterov: bool = MISSING


@dataclass
class DTP:
    name: str = spec(choices=("dtp",))
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
    seed: int = _seed()
    lr: float = _lr()
    reg: float = spec(ge=0)
    lr_target: float = spec(ge=0)
    max_iter: int = _size()
    batch_size: int = _size()
    eval_every: int = _size()
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


GROUPS: dict[str, dict[str, type]] = {
    "dataset": {
        "temporal_order": TemporalOrder,
        "adding": Adding,
        "digits": Digits,
        "mnist": IdxImages,
        "fashion_mnist": IdxImages,
        "cifar10": Cifar10,
        "ptb": PTB,
    },
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
