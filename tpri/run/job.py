"""One job's objects built from its config: task, model, update direction, torch optimizer,
batch generator and evaluation sets; their resumable state; evaluation."""

from __future__ import annotations

import contextlib
import math

import torch
from torch import Tensor

from tpri.algorithm.tp import Direction
from tpri.configs.build import make_direction, make_model, make_optimizer
from tpri.configs.rules import ConfigError, check_device_here
from tpri.data import make_task
from tpri.data.base import Task, eval_chunk
from tpri.data.download import DataFileError
from tpri.run.rundir import Checkpoint, trajectory_config


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    check_device_here(name)
    return torch.device(name)


@contextlib.contextmanager
def denormals_flushed():
    """Within: float32 values below 1.2e-38 count as 0. TP's targets and BP's adjoints shrink step
    by step through long sequences, and x86 CPUs compute on such denormals 5-10x slower. The CPU
    flag also flushes Python's own float arithmetic in this thread, so it is restored on exit
    (config checks outside see 1e-320 as 1e-320)."""
    was_on = (torch.tensor([1e-39]) * 1.0).item() == 0.0  # torch has no getter for the flag
    torch.set_flush_denormal(True)
    try:
        yield
    finally:
        if not was_on:
            torch.set_flush_denormal(False)


class Job:
    """Everything one run needs, built from a checked config."""

    def __init__(self, cfg: dict):
        self.cfg = cfg
        if cfg["threads"] > 0:
            torch.set_num_threads(cfg["threads"])
        self.device = pick_device(cfg["device"])
        self.task = _build("dataset", lambda: make_task(**cfg["dataset"]))
        torch.manual_seed(cfg["seed"])
        self.model_options = {
            **cfg["model"],
            "input_size": self.task.input_size,
            "output_size": self.task.output_size,
        }
        self.model = _build("model", lambda: make_model(**self.model_options)).to(self.device)
        self.direction: Direction = _build("optimizer", lambda: make_direction(**cfg["optimizer"]))
        _build("optimizer", lambda: self.direction.check(self.model))
        self.optimizer = _build(
            "optimizer", lambda: make_optimizer(self.model.parameters(), **cfg["optimizer"])
        )
        self.generator = torch.Generator(device=self.device).manual_seed(cfg["seed"])
        self.eval_sets = {
            split: tuple(t.to(self.device) for t in data)
            for split, data in (("train", self.task.train_eval_set()), ("test", self.task.test_set()))
        }

    # --- state ---------------------------------------------------------------------------
    def state(self) -> dict:
        """The job's part of its `Checkpoint`: weights, optimizer, random streams, config."""
        return {
            "model": self.model.state_dict(),
            "model_options": self.model_options,
            "optimizer": self.optimizer.state_dict(),
            "generator": self.generator.get_state(),
            "torch_rng": torch.get_rng_state(),
            "config": trajectory_config(self.cfg),
            "direction": self.direction.state_dict(),  # DTP's reverse layer; {} otherwise
            "task": self.task.state_dict(),  # PTB's in-order cursor; {} otherwise
        }

    def weights(self, **extra) -> dict:
        """What `best.pt` keeps: a copy of the model's weights and how to build the model."""
        weights = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        return {"model": weights, "model_options": self.model_options, **extra}

    def load(self, checkpoint: Checkpoint) -> None:
        """Continue from a checkpoint; raises when it does not fit this job (shapes, states)."""
        self.model.load_state_dict(checkpoint.model)
        self.optimizer.load_state_dict(checkpoint.optimizer)
        self.generator.set_state(checkpoint.generator)
        torch.set_rng_state(checkpoint.torch_rng)
        self.direction.load_state_dict(checkpoint.direction or {})  # absent before tpri 0.1.0's DTP
        self.task.load_state_dict(checkpoint.task or {})  # absent before PTB's in-order reading

    # --- evaluation ----------------------------------------------------------------------
    @torch.no_grad()
    def evaluate(self) -> dict:
        row = {}
        per_step = self.task.objective == "language_model"  # predictions (B, T, V)
        for split, (x, y) in self.eval_sets.items():
            chunk = eval_chunk(self.task.output_size, x.shape[1], per_step)
            row[f"{split}_loss"], row[f"{split}_accuracy"] = evaluate_set(self.model, self.task, x, y, chunk)
        if per_step:
            row["test_perplexity"] = math.exp(min(row["test_loss"], 50.0))
        return row


@torch.no_grad()
def evaluate_set(model, task: Task, x: Tensor, y: Tensor, chunk: int) -> tuple[float, float]:
    """(loss, accuracy) of `model` on the set (x, y) by `task`'s rules, `chunk` sequences per
    forward pass: each chunk's loss and accuracy weighted by its sequences (every chunk has the
    same steps, so this is the mean over all sequences, or sequences x steps), summed in float64.
    With one chunk the numbers are exactly `task.loss` and `task.accuracy` of one pass; a NaN or
    inf loss in any chunk makes the loss NaN or inf. Only one chunk's predictions are held."""
    loss = accuracy = 0.0
    for xb, yb in zip(x.split(chunk), y.split(chunk)):
        chunk_loss, chunk_accuracy = _chunk_metrics(model, task, xb, yb)
        loss += chunk_loss * len(xb)
        accuracy += chunk_accuracy * len(xb)
    return loss / len(x), accuracy / len(x)


def _chunk_metrics(model, task: Task, x: Tensor, y: Tensor) -> tuple[float, float]:
    """One forward pass's loss and accuracy; its predictions are freed on return."""
    pred = model(x)
    return task.loss(pred, y).item(), task.accuracy(pred, y)


def _build(group: str, make):
    """Run a constructor: its complaint about an option becomes a ConfigError naming the
    group; a damaged data file (DataFileError) stays what it is: the job fails."""
    try:
        return make()
    except (ConfigError, DataFileError):
        raise
    except (ValueError, TypeError, FileNotFoundError) as err:
        raise ConfigError(f"{group}: {err}") from err


def load_model(run_dir, which: str = "best", map_location="cpu") -> torch.nn.Module:
    """The model of a finished or running job dir, with its best (`best.pt`) or last
    (`checkpoint.pt`) weights, in eval mode::

        model = tpri.load_model("outputs/runs/2026-11-27/10-00-00", which="best")

    The file is read as tensors and plain data only (no pickled object is ever run); a
    missing, damaged or foreign file raises `tpri.io.UnreadableFile` naming it."""
    from pathlib import Path

    from tpri.io import UnreadableFile, load_torch
    from tpri.run.rundir import BEST, CHECKPOINT

    files = {"best": BEST, "last": CHECKPOINT}
    if which not in files:
        raise ValueError(f"which={which!r}; accepted: 'best', 'last'")
    path = Path(run_dir) / files[which]
    if not path.exists():
        raise UnreadableFile(f"{path}: no such file (is {run_dir} a tpri job dir?)")
    state = load_torch(path, map_location)
    if not (isinstance(state, dict) and isinstance(state.get("model_options"), dict)):
        raise UnreadableFile(f"{path}: not a tpri weights file (no 'model' and 'model_options')")
    try:
        model = make_model(**state["model_options"])
        model.load_state_dict(state["model"])
    except (TypeError, ValueError, RuntimeError, KeyError) as err:
        line = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise UnreadableFile(f"{path}: its weights do not build a tpri model ({line})") from None
    return model.eval()
