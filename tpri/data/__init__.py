"""Tasks (datasets) for sequence models. `make_task(name, **options)` builds one by name."""

from __future__ import annotations

import functools

from tpri.data.base import Task, TensorTask
from tpri.data.images import cifar10, cifar_files, digits, fashion_mnist, idx_files, mnist
from tpri.data.synthetic import AddingTask, TemporalOrderTask
from tpri.data.text import PTBTask, ptb_files

TASKS = {
    "temporal_order": TemporalOrderTask,
    "adding": AddingTask,
    "digits": digits,
    "mnist": mnist,
    "fashion_mnist": fashion_mnist,
    "cifar10": cifar10,
    "ptb": PTBTask,
}


# the datasets read from files: data_dir -> the files (FileNotFoundError when one is missing)
DATA_FILES = {
    "mnist": functools.partial(idx_files, "mnist"),
    "fashion_mnist": functools.partial(idx_files, "fashion_mnist"),
    "cifar10": cifar_files,
    "ptb": ptb_files,
}


def check_files(name: str, **options) -> None:
    """Raise FileNotFoundError (naming the files, the folder and how to get them) when dataset
    `name` reads files that are missing and `download` is false; reads and fetches nothing."""
    if name in DATA_FILES and not options.get("download"):
        DATA_FILES[name](options["data_dir"])


def make_task(name: str, **options) -> Task:
    """Build the task called `name` with its options (the keys of `conf/dataset/<name>.yaml`)."""
    if name not in TASKS:
        raise ValueError(f"dataset.name: unknown dataset {name!r}; accepted: {sorted(TASKS)}")
    return TASKS[name](**options)


__all__ = [
    "TASKS",
    "AddingTask",
    "PTBTask",
    "Task",
    "TemporalOrderTask",
    "TensorTask",
    "check_files",
    "cifar10",
    "digits",
    "fashion_mnist",
    "make_task",
    "mnist",
]
