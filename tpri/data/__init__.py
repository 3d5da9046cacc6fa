"""Tasks (datasets) for sequence models. `make_task(name, **options)` builds one by name."""

from __future__ import annotations

from tpri.data.base import Task, TensorTask
from tpri.data.images import cifar10, digits, fashion_mnist, mnist
from tpri.data.synthetic import AddingTask, TemporalOrderTask
from tpri.data.text import PTBTask

TASKS = {
    "temporal_order": TemporalOrderTask,
    "adding": AddingTask,
    "digits": digits,
    "mnist": mnist,
    "fashion_mnist": fashion_mnist,
    "cifar10": cifar10,
    "ptb": PTBTask,
}


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
    "cifar10",
    "digits",
    "fashion_mnist",
    "make_task",
    "mnist",
]
