"""Update directions: target propagation via regularized inversion, and back-propagation.

Both expose `.backward(model, inputs, labels, loss_fn)`, which accumulates the direction into
`p.grad` of every parameter (like `loss.backward()`: call `optimizer.zero_grad()` first) and
returns the batch loss; any `torch.optim` optimizer then steps on these directions.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from tpri.inverse import Diverged, previous_states

TARGETS = ("linearized", "difference", "inverse")
UPDATES = ("graph", "local")


def _check_number(key: str, value, low: float, strict: bool) -> float:
    bad = not isinstance(value, (int, float)) or isinstance(value, bool) or math.isnan(value)
    if bad or (value <= low if strict else value < low):
        raise ValueError(f"{key} must be a number {'>' if strict else '>='} {low}, got {value!r}")
    return float(value)


class Backprop:
    """Back-propagation (through time): the direction is the gradient of the loss."""

    def check(self, model: nn.Module) -> None:
        """BP trains any differentiable model."""

    def backward(self, model: nn.Module, inputs: Tensor, labels: Tensor, loss_fn) -> Tensor:
        loss = loss_fn(model(inputs), labels)
        loss.backward()
        return loss.detach()

    def __repr__(self) -> str:
        return "Backprop()"


class TargetProp:
    """Target propagation via regularized inversion (Roulet & Harchaoui, TMLR 2023).

    One call runs the forward pass, back-propagates the loss through the readout only,
    sets the top target v_T = h_T - lr_target * dl/dh_T, propagates targets backwards through
    the regularized layer inverses, and fills the gradients of
        J = sum_t sum_batch 1/2 ||h_t - v_t||^2
    into the recurrent parameters (the readout gets the plain loss gradient).

    Args:
        lr_target: gamma_h, the step of the top target (>= 0).
        reg: r, the regularization of the layer inverses (>= 0; 0 needs an invertible W).
        targets: "linearized" (the paper's default), "difference" or "inverse" (plain TP).
        update: "graph" (gradient of J through the unrolled forward, the paper's experiments)
            or "local" (each step's h_{t-1} held at its forward value; parallel in t).

    After a call, `self.displacements` holds v_t - h_t, shape (B, T, d).
    Raises `tpri.Diverged` on a failed factorisation or non-finite targets.
    """

    def __init__(self, lr_target: float, reg: float, targets: str = "linearized",
                 update: str = "graph"):
        self.lr_target = _check_number("lr_target", lr_target, 0.0, strict=False)
        self.reg = _check_number("reg", reg, 0.0, strict=False)
        if targets not in TARGETS:
            raise ValueError(f"targets: unknown rule {targets!r}; accepted: {list(TARGETS)}")
        if update not in UPDATES:
            raise ValueError(f"update: unknown mode {update!r}; accepted: {list(UPDATES)}")
        self.targets, self.update = targets, update
        self.displacements: Tensor | None = None

    def __repr__(self) -> str:
        return (f"TargetProp(lr_target={self.lr_target}, reg={self.reg}, "
                f"targets={self.targets!r}, update={self.update!r})")

    def backward(self, model: nn.Module, inputs: Tensor, labels: Tensor, loss_fn) -> Tensor:
        """Accumulate the TP direction into `p.grad` and return the batch loss."""
        self.check(model)
        if self.update == "graph":
            hs = model.states(inputs)  # (B, T, d), recorded for the gradient of J
            h = hs.detach()
        else:
            with torch.no_grad():
                h = model.states(inputs)
        loss, grad_h = _readout_backward(model, h, labels, loss_fn)
        with torch.no_grad():
            inverse = self.layer_inverse(model, inputs, h)
            per_step = grad_h if model.per_step_loss else None
            E = self.propagate(inverse, grad_h[:, -1], per_step).transpose(0, 1)  # (B, T, d)
        if self.update == "graph":
            hs.backward(-E)  # dJ/dh_t = h_t - v_t = -e_t
        else:
            _local_backward(model, inputs, h, E)
        self.displacements = E
        return loss.detach()

    def layer_inverse(self, model: nn.Module, inputs: Tensor, h: Tensor):
        """The object whose target rules the sweep applies: the model's regularized inverses."""
        return model.regularized_inverse(inputs, h, self.reg)

    def check(self, model: nn.Module) -> None:
        """Raise ValueError when this TP configuration cannot train `model` (a non-invertible
        activation, a target rule the model has no inverse for)."""
        if hasattr(model, "check_tp"):
            model.check_tp(self.targets)

    def propagate(self, inverse, grad_last: Tensor, grad_steps: Tensor | None = None) -> Tensor:
        """Target sweep: the displacements e_t = v_t - h_t for t = T..1, shape (T, B, d).

        grad_last: dl/dh_T (B, d). grad_steps: dl/dh_t (B, T, d) when every step has its own
        loss (then each step also gets its local target u_t = h_t - lr_target dl/dh_t).
        """
        step = getattr(inverse, self.targets)  # (e_k, k, out) -> e_{k-1}
        T, B, d = inverse.h.shape
        E = grad_last.new_empty(T, B, d)
        steps = E.unbind(0)  # views into E, one per step
        torch.mul(grad_last, -self.lr_target, out=steps[T - 1])
        for k in range(T - 1, 0, -1):
            step(steps[k], k, out=steps[k - 1])
            if grad_steps is not None:
                steps[k - 1].add_(grad_steps[:, k - 1], alpha=-self.lr_target)
        if not torch.isfinite(E.sum()):  # one reduction: NaN / inf anywhere spoil the sum
            raise Diverged("non-finite targets in the TP sweep")
        return E


def _local_backward(model: nn.Module, inputs: Tensor, h: Tensor, E: Tensor) -> None:
    """Gradient of J with every h_{t-1} held at its forward value: the model's closed form
    (`model.local_backward`) when it has one, else autograd through one step batched over t."""
    if hasattr(model, "local_backward"):
        model.local_backward(inputs, h, E)
    else:
        autograd_local_backward(model, inputs, h, E)


def autograd_local_backward(model: nn.Module, inputs: Tensor, h: Tensor, E: Tensor) -> None:
    """Local-update gradient of J by autograd through `model.cell`, batched over all steps."""
    model.cell(previous_states(h), inputs).backward(-E)  # dJ/dh_t = -e_t


def _readout_backward(model: nn.Module, h: Tensor, labels: Tensor, loss_fn):
    """Loss with the states detached; fills the readout's gradients and returns dl/dh."""
    leaf = h.detach().requires_grad_()
    with torch.enable_grad():
        loss = loss_fn(model.predict(leaf), labels)
        loss.backward()
    return loss, leaf.grad
