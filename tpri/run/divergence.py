"""When a run stops as `diverged`: the paper's loss rule on a schedule, and tpri's extra rule.

- **loss rule** (the paper's): the train loss of the latest evaluation is NaN or more than twice
  the initial one. The authors check it once per epoch (every 4,000 iterations on the synthetic
  tasks, 3,750 on MNIST with batch 16) and at the end of a run, on the latest evaluation: key
  `diverge_check_every` (iterations; 0: at every evaluation, tpri's stricter schedule).
- **weight-norm rule** (tpri's, not the paper's): the Frobenius norm of the recurrent weight
  exceeds `diverge_weight_norm` (null: off), checked after every update.
- **numerical faults** always stop a run at once: a non-finite batch loss, non-finite targets,
  a failed factorisation (`tpri.Diverged` raised by the direction). The parameters are then
  non-finite, or about to be, and stay so: the loss rule would stop the run at its next check.

The reason recorded in summary.json names the rule and its schedule.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from tpri.configs.schema import Config

CHECK_EVERY_KEY = "diverge_check_every"
WEIGHT_NORM_KEY = "diverge_weight_norm"


def _default(key: str):
    return Config.__dataclass_fields__[key].default


@dataclass(frozen=True)
class DivergenceRules:
    """The divergence rules of one run (see the module docstring)."""

    check_every: int = 0  # iterations between checks of the loss rule; 0: every evaluation
    weight_norm: float | None = None  # bound of |W|_F; None: the rule is off

    @classmethod
    def from_config(cls, cfg: dict) -> DivergenceRules:
        """The rules of a composed config (keys missing from a library dict: the schema's defaults)."""
        return cls(
            check_every=cfg.get(CHECK_EVERY_KEY, _default(CHECK_EVERY_KEY)),
            weight_norm=cfg.get(WEIGHT_NORM_KEY, _default(WEIGHT_NORM_KEY)),
        )

    @property
    def schedule(self) -> str:
        """The loss rule's schedule, in words."""
        if self.check_every == 0:
            return f"at every evaluation ({CHECK_EVERY_KEY}=0)"
        return f"every {self.check_every} iterations and at the end ({CHECK_EVERY_KEY}={self.check_every})"

    def loss_due(self, done: int, max_iter: int, evaluated: bool) -> bool:
        """Whether the loss rule is checked after iteration `done` (`evaluated`: an evaluation
        was just made)."""
        if self.check_every == 0:
            return evaluated
        return done % self.check_every == 0 or done == max_iter

    def loss_reason(self, rows: list[dict], done: int) -> str | None:
        """Why the latest evaluation's train loss breaks the loss rule; None when it does not."""
        latest, initial = rows[-1], rows[0]["train_loss"]
        loss = latest["train_loss"]
        if math.isfinite(loss) and loss <= 2 * initial:
            return None
        return (
            f"loss rule (the paper's: train loss NaN or more than twice its initial value), "
            f"checked {self.schedule}: at iteration {done} the train loss of the evaluation at "
            f"iteration {latest['iteration']} is {loss:.4g} (initial {initial:.4g})"
        )

    def weight_norm_broken(self, norm) -> bool | None:
        """Whether |W|_F = `norm` (a tensor) breaks the weight-norm rule, as a tensor (no host
        sync); None when the rule is off."""
        return None if self.weight_norm is None else norm > self.weight_norm

    def weight_norm_reason(self, norm: float, done: int) -> str:
        return (
            f"weight-norm rule (tpri's, not the paper's), checked after every update: the recurrent "
            f"weight's norm |W|_F={norm:.3g} exceeds {WEIGHT_NORM_KEY}={self.weight_norm} at iteration {done}"
        )
