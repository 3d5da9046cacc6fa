"""The record of one job's progress: metric rows, gradient rows, training time and the best
evaluation, written to `metrics.csv` / `gradients.csv` / `summary.json` and sent to the
experiment trackers."""

from __future__ import annotations

import csv
import io
import logging
import math
from collections.abc import Sequence
from pathlib import Path

from tpri import io as files
from tpri.run.rundir import GRADIENTS, METRICS, Checkpoint

log = logging.getLogger("tpri")

# the metric that picks the best evaluation (and `best.pt`), per task objective
# (key, +1 to maximise / -1 to minimise)
BEST_METRIC = {
    "classification": ("test_accuracy", 1),
    "regression": ("test_loss", -1),
    "language_model": ("test_loss", -1),
}


class Record:
    """Rows of one job, in memory and on disk; `trackers` receive every evaluation."""

    def __init__(self, out: Path, objective: str, trackers: Sequence = (), tag: str = ""):
        self.out, self.trackers, self.tag = out, list(trackers), tag
        self.best_key, self._sign = BEST_METRIC[objective]
        self.rows: list[dict] = []
        self.gradient_rows: list[dict] = []
        self.iteration, self.train_time, self.resumed_from = 0, 0.0, None

    # --- checkpointed state --------------------------------------------------------------
    def state(self) -> dict:
        """The record's part of its `Checkpoint`."""
        return {
            "iteration": self.iteration,
            "metrics": self.rows,
            "gradients": self.gradient_rows,
            "train_time": self.train_time,
        }

    def restore(self, checkpoint: Checkpoint) -> None:
        """Continue from the rows of a checkpoint (the files: `loop.reconcile`)."""
        self.rows, self.gradient_rows = list(checkpoint.metrics), list(checkpoint.gradients)
        self.iteration, self.train_time = checkpoint.iteration, checkpoint.train_time
        self.resumed_from = self.iteration

    # --- recording -----------------------------------------------------------------------
    def record(self, iteration: int, metrics: dict) -> bool:
        """Append one evaluation; True when it is the best so far."""
        row = {"iteration": iteration, "time": round(self.train_time, 6), **metrics}
        best = self.best()
        self.rows.append(row)
        self._align_columns()
        files.save_text(csv_text(self.rows), self.out / METRICS)
        for tracker in self.trackers:
            tracker.log_metrics({k: v for k, v in row.items() if k != "iteration"}, iteration)
        log.info(
            "%siter %d  train_loss %.4f  test_loss %.4f  test_accuracy %.4f",
            self.tag,
            iteration,
            row["train_loss"],
            row["test_loss"],
            row["test_accuracy"],
        )
        value = row[self.best_key]
        return math.isfinite(value) and (best is None or self._sign * (value - best[self.best_key]) > 0)

    def annotate(self, values: dict) -> None:
        """Add diagnostic columns to the last row (the iterate the diagnosed update left)."""
        self.rows[-1].update(values)
        self._align_columns()
        files.save_text(csv_text(self.rows), self.out / METRICS)

    def add_gradients(self, iteration: int, adjoint_norm: list, displacement_norm: list | None) -> None:
        """Per-step BP adjoint and TP displacement norms of one diagnosed update."""
        displacement_norm = displacement_norm or [float("nan")] * len(adjoint_norm)
        for step, (adj, disp) in enumerate(zip(adjoint_norm, displacement_norm), 1):
            self.gradient_rows.append(
                {"iteration": iteration, "step": step, "adjoint_norm": adj, "displacement_norm": disp}
            )
        files.save_text(csv_text(self.gradient_rows), self.out / GRADIENTS)

    def _align_columns(self) -> None:
        """Every row gets every column (NaN where a diagnostic was not computed)."""
        columns = dict.fromkeys(k for row in self.rows for k in row)
        for row in self.rows:
            for key in columns:
                row.setdefault(key, float("nan"))

    # --- summaries -----------------------------------------------------------------------
    def best(self) -> dict | None:
        """The evaluation with the best `best_key` (earliest on ties), None before any."""
        finite = [r for r in self.rows if math.isfinite(r[self.best_key])]
        if not finite:
            return None
        return max(finite, key=lambda r: (self._sign * r[self.best_key], -r["iteration"]))

    def summary(self, status: str, reason: str | None) -> dict:
        rows, best = self.rows, self.best()
        finite = [r for r in rows if math.isfinite(r["train_loss"])]
        return {
            "status": status,
            "reason": reason,
            "iteration": self.iteration,
            "final": rows[-1] if rows else {},
            "best": {
                "train_loss": min((r["train_loss"] for r in finite), default=None),
                "test_loss": min((r["test_loss"] for r in finite), default=None),
                "test_accuracy": max((r["test_accuracy"] for r in rows), default=None),
                "metric": self.best_key,
                "iteration": best["iteration"] if best else None,
            },
            "resumed_from": self.resumed_from,
        }

    def end_line(self, status: str, reason: str | None, wall_time: float) -> str:
        """One line closing a job: status, final and best test metric, where, how long."""
        key, best = self.best_key, self.best()
        final = self.rows[-1][key] if self.rows else float("nan")
        best_text = f"best {best[key]:.4g} at it {best['iteration']}" if best else "no best"
        why = f" ({reason})" if reason and status != "completed" else ""
        return (
            f"{self.tag}{status}{why} at iteration {self.iteration}: {key} final {final:.4g}, "
            f"{best_text}; {self.out} [{wall_time:.1f} s]"
        )


def csv_text(rows: list[dict]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()
