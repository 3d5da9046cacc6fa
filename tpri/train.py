"""The training loop behind `python train.py`: one config -> one job directory.

A job directory holds `metrics.csv` (one row per evaluation), `summary.json` (status and
final metrics), `checkpoint.pt` (resumable state, written atomically) and, when
`log_gradients` is on, `gradients.csv`. Re-running the same config into the same directory
resumes from the checkpoint, or skips the job if it already completed or diverged.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
import shutil
import sys
import time
from collections.abc import Mapping
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf

from tpri import __version__
from tpri.build import make_direction, make_model, make_optimizer
from tpri.checkpoint import save_json, save_text, save_torch
from tpri.config import ConfigError, check_config
from tpri.data import make_task
from tpri.diagnostics import bp_adjoints, bp_gradients, cosines, recurrent_weight
from tpri.inverse import Diverged

log = logging.getLogger("tpri")

METRICS, SUMMARY, CHECKPOINT, GRADIENTS = "metrics.csv", "summary.json", "checkpoint.pt", "gradients.csv"
FINISHED = ("completed", "diverged")
# keys that may change between a run and its resumption: they do not alter the trajectory
RESUMABLE_KEYS = ("max_iter", "checkpoint_every", "threads", "device")
EVAL_CHUNK = 1000  # sequences per forward pass at evaluation


def run(cfg: Mapping, output_dir: str | Path) -> dict:
    """Train one job described by `cfg` (the composed config, as a dict or DictConfig) into
    `output_dir` and return its summary. Bad configurations raise `ConfigError` before
    anything is written; divergence ends the job with status "diverged"."""
    cfg = _plain(cfg)
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    try:
        job = Job(cfg)
    except ConfigError:
        _discard_if_empty(out)
        raise
    return job.fit(out)


def _plain(cfg: Mapping) -> dict:
    """A plain, resolved dict without Hydra's own node."""
    if isinstance(cfg, DictConfig):
        cfg = OmegaConf.to_container(cfg, resolve=True)
    return {k: v for k, v in dict(cfg).items() if k != "hydra"}


def _discard_if_empty(out: Path) -> None:
    """Remove a job dir that holds only what Hydra wrote before the config was rejected."""
    leftovers = {p.name for p in out.iterdir()} - {".hydra", "train.log"}
    if not leftovers and not (out / SUMMARY).exists():
        shutil.rmtree(out, ignore_errors=True)


def trajectory_config(cfg: dict) -> dict:
    """The part of the config that determines the training trajectory."""
    return {k: v for k, v in cfg.items() if k not in RESUMABLE_KEYS}


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device: 'cuda' was asked for but CUDA is not available; "
                          "accepted here: 'auto', 'cpu'")
    return torch.device(name)


class Job:
    """Everything one run needs, built and validated from the config."""

    def __init__(self, cfg: dict):
        check_config(cfg)
        self.cfg = cfg
        if cfg["threads"] > 0:
            torch.set_num_threads(cfg["threads"])
        self.device = pick_device(cfg["device"])
        self.task = _build("dataset", lambda: make_task(**cfg["dataset"]))
        torch.manual_seed(cfg["seed"])
        self.model = _build("model", lambda: make_model(
            **cfg["model"], input_size=self.task.input_size,
            output_size=self.task.output_size)).to(self.device)
        self.direction = _build("optimizer", lambda: make_direction(**cfg["optimizer"]))
        _build("optimizer", lambda: self.direction.check(self.model))
        self.optimizer = _build("optimizer", lambda: make_optimizer(
            self.model.parameters(), **cfg["optimizer"]))
        self.generator = torch.Generator().manual_seed(cfg["seed"])
        self.eval_sets = {split: tuple(t.to(self.device) for t in data) for split, data in
                          (("train", self.task.train_eval_set()), ("test", self.task.test_set()))}

    # --- state ---------------------------------------------------------------------------
    def state(self, **extra) -> dict:
        state = {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                 "generator": self.generator.get_state(), "torch_rng": torch.get_rng_state(),
                 "config": trajectory_config(self.cfg), **extra}
        if hasattr(self.direction, "state_dict"):
            state["direction"] = self.direction.state_dict()
        return state

    def load(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.generator.set_state(state["generator"])
        torch.set_rng_state(state["torch_rng"])
        if "direction" in state:
            self.direction.load_state_dict(state["direction"])

    # --- evaluation ----------------------------------------------------------------------
    @torch.no_grad()
    def evaluate(self) -> dict:
        row = {}
        for split, (x, y) in self.eval_sets.items():
            pred = torch.cat([self.model(xb) for xb in x.split(EVAL_CHUNK)])
            row[f"{split}_loss"] = self.task.loss(pred, y).item()
            row[f"{split}_accuracy"] = self.task.accuracy(pred, y)
        if self.task.objective == "language_model":
            row["test_perplexity"] = math.exp(min(row["test_loss"], 50.0))
        return row

    # --- training ------------------------------------------------------------------------
    def fit(self, out: Path) -> dict:
        cfg = self.cfg
        previous = _read_json(out / SUMMARY)
        checkpoint = torch.load(out / CHECKPOINT, weights_only=False) if (out / CHECKPOINT).exists() else None
        _check_same_run(cfg, out, previous, checkpoint)
        if previous and previous["status"] in FINISHED and (
                previous["status"] == "diverged" or previous["iteration"] >= cfg["max_iter"]):
            log.info("%s: already %s at iteration %d, skipping", out, previous["status"],
                     previous["iteration"])
            return previous
        run = _Progress(out, cfg)
        if checkpoint is not None:
            self.load(checkpoint)
            run.restore(checkpoint)
            log.info("resuming %s from iteration %d", out, run.iteration)
        else:
            run.record(0, 0.0, self.evaluate())
        run.write_summary("running")
        return self._loop(run)

    def _loop(self, run: "_Progress") -> dict:
        cfg, task, start = self.cfg, self.task, run.iteration
        bar = _bar(cfg["max_iter"], start)
        session_start, session_train = time.perf_counter(), 0.0
        try:
            for it in range(start, cfg["max_iter"]):
                x, y = (t.to(self.device) for t in task.sample(cfg["batch_size"], self.generator))
                tick = time.perf_counter()
                self.optimizer.zero_grad(set_to_none=True)
                loss = self.direction.backward(self.model, x, y, task.loss)
                # diagnostics of the update from an evaluated iterate, on its training batch
                diagnose = (cfg["log_gradients"] or cfg["log_cosine"]) and it % cfg["eval_every"] == 0
                if diagnose:
                    before = recurrent_weight(self.model).detach().clone()
                    values = run.diagnostics(it, self._diagnostics(x, y))
                self.optimizer.step()
                elapsed = time.perf_counter() - tick
                run.train_time += elapsed
                session_train += elapsed
                if not torch.isfinite(loss):
                    raise Diverged(f"non-finite batch loss at iteration {it + 1}")
                if diagnose:
                    run.annotate({**values, **self._weight_norms(before)})
                done = run.iteration = it + 1
                if done % cfg["eval_every"] == 0 or done == cfg["max_iter"]:
                    row = run.record(done, run.train_time, self.evaluate())
                    bar.update(done - bar.n)
                    bar.set_postfix(loss=f"{row['train_loss']:.4g}", acc=f"{row['test_accuracy']:.3f}")
                    _check_divergence(run)
                if cfg["checkpoint_every"] and done % cfg["checkpoint_every"] == 0 and done < cfg["max_iter"]:
                    save_torch(self.state(**run.state()), run.out / CHECKPOINT)
        except Diverged as err:
            log.warning("diverged: %s", err)
            return run.finish("diverged", str(err), session_start, session_train)
        except Exception as err:  # a bug or a resource error: recorded, then raised
            run.finish("failed", f"{type(err).__name__}: {err}", session_start, session_train)
            raise
        finally:
            bar.close()
        save_torch(self.state(**run.state()), run.out / CHECKPOINT)
        return run.finish("completed", None, session_start, session_train)

    def _diagnostics(self, x, y) -> dict:
        result = {}
        if self.cfg["log_gradients"]:
            adjoints = bp_adjoints(self.model, x, y, self.task.loss)  # (B, T, d)
            result["adjoint_norm"] = adjoints.norm(dim=-1).mean(0).tolist()
            displacements = getattr(self.direction, "displacements", None)
            if displacements is not None:
                result["displacement_norm"] = displacements.norm(dim=-1).mean(0).tolist()
        if self.cfg["log_cosine"]:
            directions = {n: p.grad for n, p in self.model.named_parameters()}
            result["cosines"] = cosines(directions, bp_gradients(self.model, x, y, self.task.loss))
        return result

    def _weight_norms(self, before: torch.Tensor) -> dict:
        W = recurrent_weight(self.model).detach()
        return {"update_norm": (W - before).norm().item(),
                "w_spectral_norm": torch.linalg.matrix_norm(W, ord=2).item()}


def _build(group: str, make):
    """Run a constructor; its complaint about the options becomes a ConfigError."""
    try:
        return make()
    except ConfigError:
        raise
    except (ValueError, TypeError, FileNotFoundError) as err:
        raise ConfigError(f"{group}: {err}") from err


def _check_same_run(cfg, out, summary, checkpoint) -> None:
    theirs = (checkpoint or {}).get("config") or (summary or {}).get("config")
    if theirs is None:
        return
    ours = json.loads(json.dumps(trajectory_config(cfg)))
    if ours != theirs:
        changed = sorted(_diff_keys(ours, theirs))
        raise ConfigError(f"{out} holds a run with a different config (keys {changed}); refusing "
                          f"to resume into it. Use another output dir or the original config.")


def _diff_keys(a: dict, b: dict, prefix: str = "") -> set[str]:
    keys = set()
    for k in set(a) | set(b):
        va, vb = a.get(k), b.get(k)
        if isinstance(va, dict) and isinstance(vb, dict):
            keys |= _diff_keys(va, vb, f"{prefix}{k}.")
        elif va != vb:
            keys.add(prefix + k)
    return keys


def _check_divergence(run: "_Progress") -> None:
    """The paper's rule: the train loss is NaN or more than twice its initial value."""
    loss, initial = run.rows[-1]["train_loss"], run.rows[0]["train_loss"]
    if not math.isfinite(loss) or loss > 2 * initial:
        raise Diverged(f"train loss {loss:.4g} at iteration {run.rows[-1]['iteration']} "
                       f"(initial {initial:.4g}): NaN or more than twice the initial value")


def _read_json(path: Path):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _bar(total: int, initial: int):
    from tqdm import tqdm
    return tqdm(total=total, initial=initial, disable=not sys.stderr.isatty(), unit="it",
                dynamic_ncols=True)


class _Progress:
    """The job's record: metric rows, gradient rows, training time; writes the files."""

    def __init__(self, out: Path, cfg: dict):
        self.out, self.cfg = out, cfg
        self.rows, self.gradient_rows = [], []
        self.iteration, self.train_time, self.resumed_from = 0, 0.0, None

    def state(self) -> dict:
        return {"iteration": self.iteration, "metrics": self.rows,
                "gradients": self.gradient_rows, "train_time": self.train_time}

    def restore(self, checkpoint: dict) -> None:
        self.rows, self.gradient_rows = checkpoint["metrics"], checkpoint["gradients"]
        self.iteration, self.train_time = checkpoint["iteration"], checkpoint["train_time"]
        self.resumed_from = self.iteration
        self._write_csv(METRICS, self.rows)  # drops rows written after the checkpoint
        if self.gradient_rows:
            self._write_csv(GRADIENTS, self.gradient_rows)

    def record(self, iteration: int, train_time: float, metrics: dict) -> dict:
        row = {"iteration": iteration, "time": round(train_time, 6), **metrics}
        self.rows.append(row)
        self._align_columns()
        self._write_csv(METRICS, self.rows)
        log.info("iter %d  train_loss %.4f  test_loss %.4f  test_accuracy %.4f",
                 iteration, row["train_loss"], row["test_loss"], row["test_accuracy"])
        return row

    def annotate(self, values: dict) -> None:
        """Add diagnostic columns to the last row (the iterate the diagnosed update left)."""
        self.rows[-1].update(values)
        self._align_columns()
        self._write_csv(METRICS, self.rows)

    def _align_columns(self) -> None:
        """Every row gets every column (NaN where a diagnostic was not computed)."""
        columns = dict.fromkeys(k for row in self.rows for k in row)
        for row in self.rows:
            for key in columns:
                row.setdefault(key, float("nan"))

    def diagnostics(self, iteration: int, result: dict) -> dict:
        """Store per-step gradient norms; return the per-row values (cosines)."""
        if self.cfg["log_gradients"]:
            nan = [float("nan")] * len(result["adjoint_norm"])
            for step, (adj, disp) in enumerate(zip(result["adjoint_norm"],
                                                   result.get("displacement_norm", nan)), 1):
                self.gradient_rows.append({"iteration": iteration, "step": step,
                                           "adjoint_norm": adj, "displacement_norm": disp})
            self._write_csv(GRADIENTS, self.gradient_rows)
        return {f"cos_{name}": c for name, c in result.get("cosines", {}).items()}

    def _write_csv(self, name: str, rows: list[dict]) -> None:
        save_text(_csv_text(rows), self.out / name)

    def write_summary(self, status: str, reason: str | None = None, **extra) -> dict:
        rows = self.rows
        best = {}
        if rows:
            finite = [r for r in rows if math.isfinite(r["train_loss"])]
            best = {"train_loss": min((r["train_loss"] for r in finite), default=None),
                    "test_loss": min((r["test_loss"] for r in finite), default=None),
                    "test_accuracy": max(r["test_accuracy"] for r in rows)}
        summary = {"status": status, "reason": reason, "iteration": self.iteration,
                   "final": rows[-1] if rows else {}, "best": best,
                   "resumed_from": self.resumed_from, "version": __version__,
                   "config": trajectory_config(self.cfg), **extra}
        save_json(summary, self.out / SUMMARY)
        return summary

    def finish(self, status, reason, session_start, session_train) -> dict:
        done = self.iteration - (self.resumed_from or 0)
        return self.write_summary(
            status, reason, its_per_sec=done / session_train if session_train else None,
            wall_time=time.perf_counter() - session_start, train_time=self.train_time)


def _csv_text(rows: list[dict]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()
