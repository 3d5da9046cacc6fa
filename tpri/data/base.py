"""The task interface shared by every dataset: training batches, a fixed held-out test set,
a fixed sample of training data for measuring the train loss, the loss and the accuracy; and
the facts about a dataset that the rest of the project asks its Task class for, from the
options alone and without allocating anything: its options' schema and checks, its shape
(`Shape`), its sequence length, how figures name it."""

from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

from tpri.spec import check_section

OBJECTIVES = ("classification", "regression", "language_model")

# The paper's accuracy rule for the adding problem: a prediction is right when |error| < 0.04.
REGRESSION_TOLERANCE = 0.04
FLOAT, INDEX = 4, 8  # bytes of a float32 value, of an int64 token id
EVAL_CHUNK = 1000  # at most this many sequences per forward pass when a model is evaluated
EVAL_BYTES = 256 * 2**20  # and at most this many bytes of one forward pass's predictions


def eval_chunk(outputs: int, length: int, per_step: bool) -> int:
    """Sequences per forward pass when a model is evaluated on a task's fixed sets: EVAL_CHUNK,
    fewer when their predictions (`outputs` floats per sequence, or per step of `length` steps
    when `per_step`) would exceed EVAL_BYTES; at least 1. The facts are `Shape`'s (outputs,
    length, per_step); `tpri.run.job` evaluates in such chunks, `tpri.configs.resources` counts them."""
    per_sequence = FLOAT * outputs * (length if per_step else 1)
    return max(1, min(EVAL_CHUNK, EVAL_BYTES // per_sequence))


def data_folder(data_dir: str) -> Path:
    """`data_dir` with `~` expanded; FileNotFoundError (one line, what to set) when there is no
    home directory to expand it to (HOME unset and a user without a passwd entry)."""
    folder = os.path.expanduser(data_dir)
    if folder.startswith("~"):
        raise FileNotFoundError(
            f"dataset.data_dir={data_dir}: no home directory to expand '~' to (HOME is unset); "
            "set TPRI_DATA=/path/to/data or dataset.data_dir=/path/to/data"
        )
    return Path(folder)


class Shape(NamedTuple):
    """What a dataset gives the model, from its options (for the memory estimate)."""

    n_train: int  # sequences held in memory for training (0: generated per batch)
    n_test: int  # sequences of the fixed test set
    n_eval: int  # sequences of the fixed training sample for the train loss
    length: int  # T, steps per sequence (the longest with variable length)
    inputs: int  # n, values per step (1 for token ids)
    outputs: int  # K, classes or outputs
    per_step: bool  # an output at every step (language model)
    bytes_per_input: int  # bytes of one input value in memory, generation copies included


class Task:
    """A supervised sequence task.

    Subclasses set the attributes and implement :meth:`sample`, :meth:`test_set` and
    :meth:`train_eval_set`. Inputs are float tensors of shape (B, T, input_size); targets are
    class indices (B,) for classification, values (B,) for regression, next-token indices
    (B, T) for language modelling.
    """

    name: str = "task"
    input_size: int
    output_size: int
    length: int  # T, the number of recurrent steps
    objective: str = "classification"  # one of OBJECTIVES

    # --- facts about the dataset, read from the class (nothing allocated) ------------------
    Options: type  # the dataclass of its options: the schema of conf/dataset/<name>.yaml
    label: str = ""  # how figures name it ("sequential MNIST"); the name when empty
    token_inputs: bool = False  # inputs are token ids (B, T) for a text model to embed
    reads_files: bool = False  # reads data files (options data_dir and download)

    @classmethod
    def files(cls, options: dict) -> list[Path]:
        """The files it reads from `options["data_dir"]`, FileNotFoundError naming those
        missing and where to get them; nothing is read or fetched ([]: it reads none)."""
        return []

    @classmethod
    def check_options(cls, options: dict) -> None:
        """Raise ConfigError (a ValueError) naming the first bad `dataset.KEY`: every value
        against `Options` (types, ranges, choices), then `check_rules`. Constructors call it
        with their arguments; the config check calls the same two steps."""
        options = {k: os.fspath(v) if isinstance(v, os.PathLike) else v for k, v in options.items()}
        check_section("dataset.", options, cls.Options)  # a path may be a pathlib.Path
        cls.check_rules(options)

    @classmethod
    def check_rules(cls, options: dict) -> None:
        """Raise ConfigError when options that each fit the schema do not fit together or
        cannot give a sequence (a marker window, a chunk size); options checked by the schema."""

    @classmethod
    def shape(cls, options: dict) -> Shape:
        """What the dataset of these (checked) options gives the model, without building it."""
        raise NotImplementedError

    @classmethod
    def steps(cls, options: dict) -> int:
        """T, the steps per sequence, from the options (KeyError when one it needs is absent)."""
        return options["length"]

    @classmethod
    def variant(cls, options: dict) -> tuple[list[str], list[str]]:
        """(words, slug parts) that tell this variant of the dataset apart in figures, beyond
        its label and `permute` (e.g. ["(3 bits)"], ["bits3"]); options may be partial."""
        return [], []

    def sample(self, batch_size: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """A training batch drawn with `generator` (same generator state, same batch), on the
        generator's device."""
        raise NotImplementedError

    def state_dict(self) -> dict:
        """The state of the training stream beyond the generator (checkpointed with the job);
        {} for a task whose batches depend on the generator only."""
        return {}

    def load_state_dict(self, state: dict) -> None:
        """Restore `state_dict()`."""

    def test_set(self) -> tuple[Tensor, Tensor]:
        """The fixed held-out set used for test loss / accuracy."""
        raise NotImplementedError

    def train_eval_set(self) -> tuple[Tensor, Tensor]:
        """A fixed sample of training data on which the train loss is measured."""
        raise NotImplementedError

    # --- loss and metrics -------------------------------------------------------------
    def loss(self, pred: Tensor, target: Tensor) -> Tensor:
        """Batch-averaged loss: cross-entropy, or mean squared error for regression."""
        if self.objective == "regression":
            return F.mse_loss(pred.squeeze(-1), target)
        if self.objective == "language_model":  # pred (B, T, V), target (B, T)
            return F.cross_entropy(pred.flatten(0, 1), target.flatten())
        return F.cross_entropy(pred, target)

    def accuracy(self, pred: Tensor, target: Tensor) -> float:
        """Share of correct predictions (regression: |error| < 0.04, the paper's rule)."""
        if self.objective == "regression":
            return ((pred.squeeze(-1) - target).abs() < REGRESSION_TOLERANCE).float().mean().item()
        return (pred.argmax(-1) == target).float().mean().item()


class TensorTask(Task):
    """A task backed by in-memory tensors (images, text): batches are drawn uniformly with
    replacement from the training tensors, so a generator state fully determines the stream.

    Args:
        x_train, y_train: training inputs (N, T, n) and targets; for language modelling the
            inputs are token ids (N, T) and `input_size` (the vocabulary size) is given.
        x_test, y_test: held-out inputs and targets.
        output_size: number of classes (or 1 for regression, the vocabulary size for text).
        n_eval: size of the fixed training sample used to measure the train loss.
    """

    def __init__(
        self,
        name: str,
        x_train: Tensor,
        y_train: Tensor,
        x_test: Tensor,
        y_test: Tensor,
        output_size: int,
        objective: str = "classification",
        n_eval: int = 1000,
        eval_seed: int = 1234,
        input_size: int | None = None,
    ):
        if objective not in OBJECTIVES:
            raise ValueError(f"objective must be one of {OBJECTIVES}, got {objective!r}")
        ndim = 2 if objective == "language_model" else 3
        if x_train.ndim != ndim or x_test.ndim != ndim:
            raise ValueError(
                f"{name}: inputs must have {ndim} dimensions (N, T{', n' * (ndim == 3)}),"
                f" got {tuple(x_train.shape)} and {tuple(x_test.shape)}"
            )
        self.name, self.objective, self.output_size = name, objective, output_size
        self.x_train, self.y_train, self.x_test, self.y_test = x_train, y_train, x_test, y_test
        self.input_size = input_size if input_size is not None else x_train.shape[2]
        self.length = x_train.shape[1]
        g = torch.Generator().manual_seed(eval_seed)
        self._eval_idx = torch.randperm(len(x_train), generator=g)[:n_eval]

    def sample(self, batch_size, generator):
        """Indices drawn on the generator's device; the batch is gathered where the training
        tensors live and returned on the generator's device (no copy when they agree)."""
        idx = torch.randint(len(self.x_train), (batch_size,), generator=generator, device=generator.device)
        idx = idx.to(self.x_train.device)
        return (
            self.x_train[idx].to(generator.device, non_blocking=True),
            self.y_train[idx].to(generator.device, non_blocking=True),
        )

    def test_set(self):
        return self.x_test, self.y_test

    def train_eval_set(self):
        return self.x_train[self._eval_idx], self.y_train[self._eval_idx]
