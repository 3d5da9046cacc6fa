"""Tasks (datasets) for sequence models. `make_task(name, **options)` builds one by name.

Each dataset is a `Task` class that owns every fact about it; the rest of the project asks
the class (through `TASKS`) and never switches on a dataset's name:

- `Options`: the dataclass of its options, the schema of `conf/dataset/<name>.yaml`
  (Hydra checks the YAML against it; `tpri.configs.rules.check_config` checks plain dicts);
- `check_rules(options)`: the rules tying its options together (its constructor calls
  `check_options`, the schema check and these rules, so both paths share one rule);
- `shape(options)`, `steps(options)`: what it gives the model (sizes, T, bytes), for the memory
  estimate and the figures, without building anything;
- `label`, `variant(options)`: how the figures name it; `objective`, `token_inputs`,
  `reads_files`: what it trains, whether its inputs are token ids, whether it reads files.

Adding a dataset takes three steps and no other file:

1. a module `tpri/data/<name>.py` with its `Options` dataclass (fields from `tpri.spec`:
   `spec(ge=..., choices=...)`, `size()`, `seed()`, with a `name` field) and its `Task`
   subclass (`name`, `Options`, `input_size`, `output_size`, `shape`, the constructor
   calling `self.check_options(...)`, `sample`, `test_set`, `train_eval_set`);
2. its entry in `TASKS` below;
3. `conf/dataset/<name>.yaml` starting with `defaults: [/schema/dataset/<name>@_here_]`.

Then `python train.py dataset=<name>` and sweeps over it run; `tests/test_new_dataset.py`
does exactly this with a toy dataset.
"""

from __future__ import annotations

from tpri.data.base import Shape, Task, TensorTask
from tpri.data.images import CIFAR10, MNIST, Digits, FashionMNIST, cifar10, digits, fashion_mnist, mnist
from tpri.data.synthetic import AddingTask, TemporalOrderTask
from tpri.data.text import PTBTask
from tpri.spec import check_choice

# the registry: each Task class under its `name`, the config option `dataset=<name>`
TASKS: dict[str, type[Task]] = {
    task.name: task for task in (TemporalOrderTask, AddingTask, Digits, MNIST, FashionMNIST, CIFAR10, PTBTask)
}


def task_class(name: str) -> type[Task]:
    """The Task class registered as `name`; ConfigError (a ValueError) naming dataset.name
    otherwise."""
    check_choice("dataset.name", name, sorted(TASKS))
    return TASKS[name]


def check_files(name: str, **options) -> None:
    """Raise FileNotFoundError (naming the files, the folder and how to get them) when dataset
    `name` reads files that are missing and `download` is false; reads and fetches nothing."""
    cls = task_class(name)
    if cls.reads_files and not options.get("download"):
        cls.files(options)


def make_task(name: str, **options) -> Task:
    """Build the task called `name` with its options (the keys of `conf/dataset/<name>.yaml`)."""
    return task_class(name)(**options)


__all__ = [
    "CIFAR10",
    "MNIST",
    "TASKS",
    "AddingTask",
    "Digits",
    "FashionMNIST",
    "PTBTask",
    "Shape",
    "Task",
    "TemporalOrderTask",
    "TensorTask",
    "check_files",
    "cifar10",
    "digits",
    "fashion_mnist",
    "make_task",
    "mnist",
    "task_class",
]
