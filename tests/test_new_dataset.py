"""A dataset added the way tpri/data/__init__.py documents (its module, its entry in TASKS, its
YAML; no other file) trains through `python train.py dataset=<name>`, and a sweep over it is
checked before any job starts, its rules included."""

from __future__ import annotations

import csv
import importlib
import json
import sys
import textwrap

import pytest
from datafiles import write_idx_dataset
from helpers import CONF

import tpri.data
from tpri.app import main
from tpri.configs.schema import register_configs
from tpri.run.preflight import preflight

# 1. its module: the options dataclass and the Task class
TOY_MODULE = '''
"""Toy task: recall the first of T random bits."""

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from tpri.data.base import FLOAT, Shape, Task
from tpri.spec import ConfigError, seed, size, spec


@dataclass
class RecallOptions:
    name: str = spec(choices=("recall",))
    length: int = size()
    test_size: int = size()
    test_seed: int = seed()


class RecallTask(Task):
    name = "recall"
    label = "first-bit recall"
    Options = RecallOptions
    input_size, output_size = 2, 2

    def __init__(self, length: int = 8, test_size: int = 64, test_seed: int = 0):
        self.check_options(dict(name=self.name, length=length, test_size=test_size, test_seed=test_seed))
        self.length = length
        generator = torch.Generator().manual_seed(test_seed)
        self._test = self.sample(test_size, generator)
        self._eval = self.sample(test_size, generator)

    @classmethod
    def check_rules(cls, options):
        if options["length"] < 2:
            raise ConfigError(f"dataset.length={options['length']}: recall needs T >= 2")

    @classmethod
    def shape(cls, options):
        n, length = options["test_size"], options["length"]
        return Shape(0, n, n, length, cls.input_size, cls.output_size, False, FLOAT)

    def sample(self, batch_size, generator):
        bits = torch.randint(0, 2, (batch_size, self.length), generator=generator, device=generator.device)
        return F.one_hot(bits, 2).float(), bits[:, 0]

    def test_set(self):
        return self._test

    def train_eval_set(self):
        return self._eval
'''

# 3. its YAML
TOY_YAML = """
defaults:
  - /schema/dataset/recall@_here_

name: recall
length: 6
test_size: 50
test_seed: 0
"""


@pytest.fixture
def recall(tmp_path, monkeypatch):
    """The toy dataset added in its three steps; returns the override that finds its YAML."""
    (tmp_path / "recall_task.py").write_text(textwrap.dedent(TOY_MODULE))
    monkeypatch.syspath_prepend(str(tmp_path))
    module = importlib.import_module("recall_task")
    monkeypatch.setitem(tpri.data.TASKS, "recall", module.RecallTask)  # 2. its registry entry
    (tmp_path / "conf" / "dataset").mkdir(parents=True)
    (tmp_path / "conf" / "dataset" / "recall.yaml").write_text(TOY_YAML)
    register_configs()
    yield f"hydra.searchpath=[file://{tmp_path / 'conf'}]"
    monkeypatch.delitem(sys.modules, "recall_task")


QUICK = ["model.hidden=8", "batch_size=16", "max_iter=4", "eval_every=2"]


def test_a_job_on_a_new_dataset_trains(recall, tmp_path, monkeypatch):
    monkeypatch.setattr(
        sys, "argv", ["train.py", recall, "dataset=recall", *QUICK, f"hydra.run.dir={tmp_path}/run"]
    )
    main()  # returns: the job completed (a refused or failed one exits)
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["iteration"] == 4
    assert summary["config"]["dataset"] == {"name": "recall", "length": 6, "test_size": 50, "test_seed": 0}
    with open(tmp_path / "run" / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["iteration"]) for r in rows] == [0, 2, 4]
    assert all(0 <= float(r["test_accuracy"]) <= 1 for r in rows)


def test_a_sweep_over_a_new_dataset_is_checked_before_it_starts(recall, monkeypatch):
    monkeypatch.setenv("TPRI_MEMORY_LIMIT", "16e9")
    sweep = [recall, "dataset=recall", *QUICK]
    assert preflight([*sweep, "model.hidden=8,16"], True, str(CONF)) == []
    errors = preflight([*sweep, "dataset.length=1,4"], True, str(CONF))
    assert errors == ["job 0 (dataset.length=1): dataset.length=1: recall needs T >= 2"]


def test_a_data_dir_may_be_a_path_object(tmp_path):
    write_idx_dataset(tmp_path)
    task = tpri.data.make_task("mnist", data_dir=tmp_path, size_chunk=4)
    assert (task.length, task.input_size) == (196, 4)
