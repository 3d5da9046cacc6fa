"""Update directions: target propagation via regularized inversion, and back-propagation.

Both expose `.backward(model, inputs, labels, loss_fn)`, which accumulates the direction into
`p.grad` of every parameter (like `loss.backward()`: call `optimizer.zero_grad()` first) and
returns the batch loss; any `torch.optim` optimizer then steps on these directions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import torch
from torch import Tensor, nn

from tpri.algorithm.capture import CapturedSweep, linearized_sweep
from tpri.algorithm.inverse import Diverged, RNNInverse
from tpri.algorithm.models import autograd_local_backward
from tpri.spec import check_arguments, spec

TARGETS = ("linearized", "difference", "inverse")
UPDATES = ("graph", "local")
PER_STEP = ("tpri", "authors")  # how per-step local targets enter (text model): TargetProp.per_step_sweep


@dataclass
class BackpropOptions:
    """Back-propagation has no options of its own (its optimizer section holds the step's)."""


@dataclass
class TargetOptions:
    """What every target-propagation direction takes (TargetProp, DTP)."""

    lr_target: float = spec(ge=0)
    update: str = spec(choices=UPDATES)


@dataclass
class TargetPropOptions(TargetOptions):
    """TargetProp's options: the config section `optimizer` (tp) less the step's options."""

    reg: float = spec(ge=0)
    targets: str = spec(choices=TARGETS)
    per_step: str = spec(choices=PER_STEP)


# what TP reads of a model (tpri.RNN, GRU and TextRNN have all of it)
TP_MODEL = {
    "states": "states(inputs) -> the hidden states (B, T, d)",
    "predict": "predict(states) -> the outputs the loss reads",
    "per_step_loss": "per_step_loss (whether every step's state enters the loss)",
    "regularized_inverse": "regularized_inverse(inputs, states, reg) -> the layer inverses",
}


def check_batch(model: nn.Module, inputs, labels) -> None:
    """Raise TypeError / ValueError naming what is wrong unless `inputs` and `labels` are one
    batch `model` can read: tensors, a batch of at least one sequence of at least one step,
    as many labels as sequences, finite float inputs, and the model's own shape rules
    (`model.check_inputs`, which tpri's models have)."""
    for name, value in (("inputs", inputs), ("labels", labels)):
        if not isinstance(value, Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(value).__name__}")
    shape = tuple(inputs.shape)
    if inputs.dim() < 2:
        raise ValueError(f"inputs of shape {shape}: expected (batch, steps, ...)")
    if hasattr(model, "check_inputs"):
        model.check_inputs(inputs)
    if shape[0] == 0:
        raise ValueError(f"inputs of shape {shape}: an empty batch; give at least one sequence")
    if shape[1] == 0:
        raise ValueError(f"inputs of shape {shape}: no time steps; give sequences of at least one step")
    if labels.dim() == 0 or labels.shape[0] != shape[0]:
        raise ValueError(
            f"labels of shape {tuple(labels.shape)} do not match the {shape[0]} sequences of inputs"
        )
    if inputs.is_floating_point() and not bool(torch.isfinite(inputs).all()):
        raise ValueError(f"inputs of shape {shape} hold non-finite values (inf or NaN)")


class Direction(Protocol):
    """What the training loop needs of an update direction (Backprop, TargetProp, DTP)."""

    displacements: Tensor | None  # TP's last v_t - h_t, (B, T, d); None for BP
    Options: type  # the dataclass of its options (tpri.spec fields), read by the config check

    @classmethod
    def check_rules(cls, options: dict, prefix: str = "") -> None:
        """Raise ValueError when options that each fit `Options` do not fit together (keys
        named `prefix` + name: "optimizer." on the config path)."""

    def check(self, model: nn.Module) -> None:
        """Raise ValueError when the direction cannot train `model`."""

    @classmethod
    def check_model(cls, model_class: type, model_options: dict, options: dict) -> None:
        """Raise ValueError when the direction with `options` (its config section) cannot train
        a `model_class` with `model_options`: the rule `check` applies, from the options alone."""

    def backward(self, model: nn.Module, inputs: Tensor, labels: Tensor, loss_fn) -> Tensor:
        """Accumulate the direction into p.grad; return the batch loss."""

    def state_dict(self) -> dict:
        """State to checkpoint (DTP's reverse layer); {} when stateless."""

    def load_state_dict(self, state: dict) -> None: ...


class Stateless:
    """state_dict / load_state_dict of a direction without state of its own."""

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


class Backprop(Stateless):
    """Back-propagation (through time): the direction is the gradient of the loss."""

    displacements = None
    Options = BackpropOptions
    label = "BP"  # how tables and figures name it
    LABELLED = ()  # options a label names when they differ from the constructor's default
    named_by_step = True  # a label always names its step: BP (SGD), BP (Adam)

    inverts = False  # propagates targets through layer inverses
    step_factors = False  # keeps d x d factors of every step's regularized inverse

    def check(self, model: nn.Module) -> None:
        """BP trains any differentiable model."""

    @classmethod
    def check_rules(cls, options: dict, prefix: str = "") -> None:
        """BP has no options of its own."""

    @classmethod
    def check_model(cls, model_class: type, model_options: dict, options: dict) -> None:
        """BP trains any differentiable model."""

    def backward(self, model: nn.Module, inputs: Tensor, labels: Tensor, loss_fn) -> Tensor:
        check_batch(model, inputs, labels)
        loss = loss_fn(model(inputs), labels)
        loss.backward()
        return loss.detach()

    def __repr__(self) -> str:
        return "Backprop()"


class TargetProp(Stateless):
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

    Options = TargetPropOptions
    label = "TP"
    LABELLED = ("targets", "update", "per_step")  # the defaults are the paper's TP
    named_by_step = False  # a label names a step other than SGD only
    inverts = True  # propagates targets through layer inverses
    step_factors = True  # keeps d x d factors of every step's regularized inverse
    REVERSE_FLOATS = 0  # (B, T, d) tensors of a learned reverse layer's training (DTP's)

    def __init__(
        self,
        lr_target: float,
        reg: float,
        targets: str = "linearized",
        update: str = "graph",
        per_step: str = "tpri",
    ):
        options = dict(lr_target=lr_target, reg=reg, targets=targets, update=update, per_step=per_step)
        check_arguments(options, TargetPropOptions)
        self.check_rules(options)
        self.lr_target, self.reg = float(lr_target), float(reg)
        self.targets, self.update, self.per_step = targets, update, per_step
        self.displacements: Tensor | None = None
        self._capture = CapturedSweep()  # the CUDA graph of the linearized sweep, if any

    def __repr__(self) -> str:
        return (
            f"TargetProp(lr_target={self.lr_target}, reg={self.reg}, "
            f"targets={self.targets!r}, update={self.update!r}, per_step={self.per_step!r})"
        )

    def backward(self, model: nn.Module, inputs: Tensor, labels: Tensor, loss_fn) -> Tensor:
        """Accumulate the TP direction into `p.grad` and return the batch loss.

        Memory, for a model with the closed forms (`local_backward` / `graph_backward`, used on
        the CPU): the states and E, two (T, B, d) buffers, plus temporaries of at most
        `tpri.algorithm.inverse.CHUNK_ELEMENTS` (the linearized sweep keeps its slopes in E itself).
        Otherwise graph mode also keeps autograd's graph of the forward, as BP does.
        """
        self.check(model)
        check_batch(model, inputs, labels)
        self.displacements = None  # the last call's E goes before this call's memory comes
        by_hand = self._closed_form(model, inputs)
        if by_hand:
            with torch.no_grad():
                h = model.states(inputs)  # (B, T, d)
        else:
            hs = model.states(inputs)  # (B, T, d), recorded for the gradient of J
            h = hs.detach()
        loss, grad_last, grad_steps = _readout_backward(model, h, labels, loss_fn)
        with torch.no_grad():
            inverse = self.layer_inverse(model, inputs, h)
            E = self.per_step_sweep(inverse, grad_last, grad_steps)  # (T, B, d)
            del inverse, grad_steps  # the sweep's factors go before the update's memory comes
            E = E.transpose(0, 1)  # (B, T, d), a view
        scale = self.surrogate_scale(inputs.shape[0])
        D = E if scale == 1.0 else E * scale  # the displacements J's gradient reads
        if self.update == "local":
            _local_backward(model, inputs, h, D)
        elif by_hand:
            model.graph_backward(inputs, h, D)
        else:
            hs.backward(D.neg_())  # dJ/dh_t = h_t - v_t = -e_t, negated in place and back
            D.neg_()
        self.displacements = E
        return loss

    def per_step_sweep(self, inverse, grad_last: Tensor, grad_steps: Tensor | None) -> Tensor:
        """The displacements E (T, B, d) the surrogate J reads. With per-step losses and
        per_step='authors' (the authors' text-model rule), with l_t = -lr_target dl/dh_t:
        e_T = l_T and e_{t-1} = Jinv_t(e_t + l_t), i.e. the top local displacement is counted
        twice and the J-target of h_t (t < T) excludes its own l_t, which only enters the
        propagation to t-1. That is tpri's sweep from 2 l_T, minus l_t at every step."""
        if grad_steps is None or self.per_step == "tpri":
            return self.propagate(inverse, grad_last, grad_steps)
        E = self.propagate(inverse, 2 * grad_last, grad_steps)
        return E.add_(grad_steps.transpose(0, 1), alpha=self.lr_target)

    def surrogate_scale(self, batch: int) -> float:
        """The factor of J (TP: 1, J sums over the batch, as the paper's code)."""
        return 1.0

    def _closed_form(self, model: nn.Module, inputs: Tensor) -> bool:
        """Whether the update skips autograd's graph of the forward: always in local mode; in
        graph mode when the model has `graph_backward` and runs on the CPU (on CUDA, cuDNN's
        fused forward and backward beat a step-by-step loop)."""
        if self.update == "local":
            return True
        return hasattr(model, "graph_backward") and inputs.device.type == "cpu"

    def layer_inverse(self, model: nn.Module, inputs: Tensor, h: Tensor):
        """The object whose target rules the sweep applies: the model's regularized inverses."""
        return model.regularized_inverse(inputs, h, self.reg)

    def check(self, model: nn.Module) -> None:
        """Raise TypeError when `model` lacks what TP reads (TP_MODEL), ValueError when this TP
        configuration cannot train it (a non-invertible activation, a target rule the model
        has no inverse for)."""
        missing = [name for name in TP_MODEL if not hasattr(model, name)]
        if self.update == "local" and not hasattr(model, "local_backward") and not hasattr(model, "cell"):
            missing.append("cell")
        if missing:
            needs = "; ".join(TP_MODEL.get(name, "cell(h_prev, x) -> h (update='local')") for name in missing)
            raise TypeError(
                f"{type(self).__name__} trains tpri's models (tpri.RNN, tpri.GRU, tpri.TextRNN) or "
                f"one that provides the same; {type(model).__name__} lacks {missing}: {needs}"
            )
        if hasattr(model, "check_tp"):
            model.check_tp(self.targets)

    @classmethod
    def check_rules(cls, options: dict, prefix: str = "") -> None:
        """per_step='authors' is defined for the linearized targets only."""
        targets = options.get("targets", "linearized")
        if options.get("per_step", "tpri") == "authors" and targets != "linearized":
            raise ValueError(
                f"{prefix}per_step='authors' is defined for {prefix}targets='linearized', got {targets!r}"
            )

    @classmethod
    def check_model(cls, model_class: type, model_options: dict, options: dict) -> None:
        """The rule of `check` from the config sections: the model's `check_tp_options`."""
        if hasattr(model_class, "check_tp_options"):
            model_class.check_tp_options(model_options, options.get("targets", "linearized"))

    def propagate(self, inverse, grad_last: Tensor, grad_steps: Tensor | None = None) -> Tensor:
        """Target sweep: the displacements e_t = v_t - h_t for t = T..1, shape (T, B, d).

        grad_last: dl/dh_T (B, d). grad_steps: dl/dh_t (B, T, d) when every step has its own
        loss (then each step also gets its local target u_t = h_t - lr_target dl/dh_t).
        On CUDA the linearized sweep of an RNN is replayed as a CUDA graph (`tpri.algorithm.capture`):
        one launch instead of ~2T; the returned E then lives in the graph's buffer, valid until
        the next call.
        """
        if self.targets == "linearized" and isinstance(inverse, RNNInverse):
            E = self._capture.run(inverse, grad_last, grad_steps, self.lr_target)
            if E is None:
                E = grad_last.new_empty(inverse.h.shape)
                tanh = inverse.slope_inv_into(E) is not None  # E starts as the slopes 1 / a'
                linearized_sweep(E, grad_last, inverse.At, tanh, grad_steps, self.lr_target, inverse.scratch)
            inverse.mul_slope_(E)  # tanh: E held e_t / a'_t, now e_t
        else:
            E = self._generic_sweep(inverse, grad_last, grad_steps)
        if not torch.isfinite(E.sum()):  # one reduction: NaN / inf anywhere spoil the sum
            raise Diverged("non-finite targets in the TP sweep")
        return E

    def _generic_sweep(self, inverse, grad_last: Tensor, grad_steps: Tensor | None) -> Tensor:
        """Any rule of any inverse, one `rule(e_k, k, out=e_{k-1})` call per step."""
        step = getattr(inverse, self.targets)  # (e_k, k, out) -> e_{k-1}
        T, B, d = inverse.h.shape
        E = grad_last.new_empty(T, B, d)
        steps = E.unbind(0)  # views into E, one per step
        torch.mul(grad_last, -self.lr_target, out=steps[T - 1])
        for k in range(T - 1, 0, -1):
            step(steps[k], k, out=steps[k - 1])
            if grad_steps is not None:
                steps[k - 1].add_(grad_steps[:, k - 1], alpha=-self.lr_target)
        return E


def _local_backward(model: nn.Module, inputs: Tensor, h: Tensor, E: Tensor) -> None:
    """Gradient of J with every h_{t-1} held at its forward value: the model's closed form
    (`model.local_backward`) when it has one, else autograd through one step batched over t."""
    if hasattr(model, "local_backward"):
        model.local_backward(inputs, h, E)
    else:
        autograd_local_backward(model, inputs, h, E)


def _readout_backward(model: nn.Module, h: Tensor, labels: Tensor, loss_fn):
    """Loss with the states detached; fills the readout's gradients. Returns the loss,
    dl/dh_T (B, d) and, for per-step losses, dl/dh (B, T, d) (else None).

    A model without per-step losses reads h_T only, so its readout gets h[:, -1:] (B, 1, d):
    no full-size gradient of zeros is made for the other steps."""
    read = h if model.per_step_loss else h[:, -1:]
    leaf = read.detach().requires_grad_()
    with torch.enable_grad():
        loss = loss_fn(model.predict(leaf), labels)
        loss.backward()
    if model.per_step_loss:
        return loss.detach(), leaf.grad[:, -1], leaf.grad
    return loss.detach(), leaf.grad[:, -1], None
