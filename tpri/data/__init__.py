"""Tasks (datasets) for sequence models. `make_task(name, **options)` builds one by name."""

from __future__ import annotations

from tpri.data.base import Task, TensorTask
from tpri.data.synthetic import AddingTask, TemporalOrderTask

TASKS = {
    "temporal_order": TemporalOrderTask,
    "adding": AddingTask,
}


def make_task(name: str, **options) -> Task:
    """Build the task called `name` with its options (the keys of `conf/dataset/<name>.yaml`)."""
    if name not in TASKS:
        raise ValueError(f"dataset.name: unknown dataset {name!r}; accepted: {sorted(TASKS)}")
    return TASKS[name](**options)


__all__ = ["Task", "TensorTask", "TemporalOrderTask", "AddingTask", "TASKS", "make_task"]
