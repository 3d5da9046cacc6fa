"""Recurrent models trained by TP or BP.

Every model exposes the same three pieces, which is all `TargetProp` needs:
  states(x)   -> all hidden states h_1..h_T, shape (B, T, d)
  predict(hs) -> the prediction from the states (the readout)
  regularized_inverse(x, hs, reg) -> the layer inverses psi_t^{-1} of the recurrence
and `forward(x) = predict(states(x))`, so BP is plain autograd on `model(x)`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from tpri.algorithm.inverse import CHUNK_ELEMENTS, RNNInverse, previous_states
from tpri.spec import check_arguments, size, spec

ACTIVATIONS = ("tanh", "identity", "relu")
INVERTIBLE = ("tanh", "identity")  # activations TP can invert exactly


@dataclass
class Sizes:
    """What a task gives every model (from the task, not config keys)."""

    input_size: int = size()
    output_size: int = size()


@dataclass
class RNNOptions:
    """RNN's options: the config section `model` (rnn)."""

    hidden: int = size()
    activation: str = spec(choices=ACTIVATIONS)


def autograd_local_backward(model: nn.Module, inputs: Tensor, h: Tensor, E: Tensor) -> None:
    """Local-update gradient of J by autograd through `model.cell`, batched over all steps."""
    model.cell(previous_states(h), inputs).backward(-E)  # dJ/dh_t = -e_t


def check_float_inputs(x: Tensor, n: int, model: str) -> None:
    """ValueError unless x holds float inputs of shape (B, T, n)."""
    if x.dim() != 3 or x.shape[-1] != n or not x.is_floating_point():
        raise ValueError(
            f"inputs of shape {tuple(x.shape)} and dtype {x.dtype}: {model} reads floats of "
            f"shape (batch, steps, {n})"
        )


@torch.no_grad()
def orthogonal_(weight: Tensor) -> Tensor:
    """Set `weight` to the nearest (semi-)orthogonal matrix to a uniform random one in
    [-1, 1), via an SVD: the paper's initialisation."""
    u, _, vh = torch.linalg.svd(torch.empty_like(weight).uniform_(-1, 1), full_matrices=False)
    return weight.copy_(u @ vh)


class RNN(nn.Module):
    """Elman RNN with a linear readout of the last state (sequence -> label).

        h_0 = 0,  h_t = a(W h_{t-1} + U x_t + b),  y_hat = V h_T + c

    `self.rnn` is a `torch.nn.RNN(batch_first=True)` holding W = `weight_hh_l0`,
    U = `weight_ih_l0` and b = `bias_ih_l0 + bias_hh_l0`; it also computes the recurrence for
    tanh and relu. torch has no identity RNN, so for `activation="identity"` the same
    parameters are unrolled here. `self.readout` is the `nn.Linear` (V, c).

    Args:
        input_size: n, features per time step.
        hidden: d, the width of the hidden state.
        output_size: number of classes (or 1 for regression).
        activation: "tanh" or "identity" (invertible, so usable by TP) or "relu" (BP only).
    """

    per_step_loss = False  # the loss reads h_T only
    token_inputs = False  # inputs are float vectors (B, T, n)
    label = "RNN"  # how figures name it
    # memory facts (tpri.configs.resources): weight blocks of the recurrence; floats of width d a
    # training step keeps per sequence and step with BP (states, pre-activations, adjoints,
    # workspace) and in addition with TP (targets, displacements, slopes); at evaluation
    # (nn.RNN's forward without autograd: about 4, measured on (1000, 2000, 6) -> d=64)
    GATES, BP_FLOATS, TP_FLOATS, EVAL_FLOATS = 1, 5, 6, 4
    Options = RNNOptions

    def __init__(self, input_size: int, hidden: int, output_size: int, activation: str = "tanh"):
        super().__init__()
        sizes = dict(input_size=input_size, output_size=output_size)
        check_arguments(dict(hidden=hidden, activation=activation, **sizes), RNNOptions, Sizes)
        self.activation = activation
        nonlinearity = "relu" if activation == "relu" else "tanh"
        self.rnn = nn.RNN(input_size, hidden, batch_first=True, nonlinearity=nonlinearity)
        self.readout = nn.Linear(hidden, output_size)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Paper's initialisation: W, U and V orthogonal, biases zero."""
        for weight in (self.rnn.weight_hh_l0, self.rnn.weight_ih_l0, self.readout.weight):
            orthogonal_(weight)
        for bias in (self.rnn.bias_ih_l0, self.rnn.bias_hh_l0, self.readout.bias):
            nn.init.zeros_(bias)

    @property
    def input_weight(self) -> Tensor:
        """U, the input weight of the recurrence (d, n) (shared by the authors' DTP reverse layer)."""
        return self.rnn.weight_ih_l0

    @property
    def bias(self) -> Tensor:
        """b = b_ih + b_hh, the bias of the recurrence."""
        return self.rnn.bias_ih_l0 + self.rnn.bias_hh_l0

    def states(self, x: Tensor) -> Tensor:
        """All hidden states h_1..h_T, shape (B, T, d), for inputs x of shape (B, T, n).
        Without autograd on the CPU (TP, evaluation) they are computed in place in one
        time-major buffer, the memory of the states alone (`states_in_place`)."""
        if not torch.is_grad_enabled() and x.device.type == "cpu":  # cuDNN is lean already
            return self.states_in_place(x)
        if self.activation != "identity":
            return self.rnn(x)[0]
        W = self.rnn.weight_hh_l0
        drive = x @ self.rnn.weight_ih_l0.T + self.bias  # (B, T, d): U x_t + b for every t
        h = drive.new_zeros(x.shape[0], W.shape[0])
        hs = []
        for drive_t in drive.unbind(1):  # unbind, not indexing: linear-time backward
            h = drive_t + h @ W.T
            hs.append(h)
        return torch.stack(hs, 1)

    @torch.no_grad()
    def states_in_place(self, x: Tensor) -> Tensor:
        """The states without autograd, with no memory beyond them: the buffer first holds
        U x_t + b, then step t adds W h_{t-1} and applies a in place. (B, T, n) -> (B, T, d),
        a time-major buffer seen batch-first, as nn.RNN returns it."""
        (B, T, n), d = x.shape, self.rnn.hidden_size
        x_rows = x.transpose(0, 1).reshape(T * B, n)  # (T*B, n), time-major rows
        hs = torch.addmm(self.bias, x_rows, self.rnn.weight_ih_l0.T).view(T, B, d)
        steps, W_t = hs.unbind(0), self.rnn.weight_hh_l0.T
        activate = {"tanh": Tensor.tanh_, "relu": Tensor.relu_, "identity": None}[self.activation]
        for t in range(T):
            if t > 0:
                steps[t].addmm_(steps[t - 1], W_t)
            if activate is not None:
                activate(steps[t])
        return hs.transpose(0, 1)

    def cell(self, h_prev: Tensor, x: Tensor) -> Tensor:
        """One recurrence step applied to any batch shape: a(W h_prev + U x + b).
        h_prev (..., d), x (..., n) -> (..., d). Used by TP's layer-local update."""
        z = h_prev @ self.rnn.weight_hh_l0.T + x @ self.rnn.weight_ih_l0.T + self.bias
        return {"tanh": torch.tanh, "relu": torch.relu, "identity": lambda v: v}[self.activation](z)

    # --- closed-form gradients of TP's surrogate J = sum_t sum_batch 1/2 ||h_t - v_t||^2 ---
    # Both take E = v - h (B, T, d) and the forward states hs (B, T, d), and accumulate into
    # `.grad`. Rows are time-major (T, B, .), the memory order of the states and of TP's targets,
    # so the reshapes are free views for them (copies otherwise, still correct).
    @torch.no_grad()
    def local_backward(self, x: Tensor, hs: Tensor, E: Tensor) -> None:
        """TP's update="local": every h_{t-1} held at its forward value, so
        dJ/dz_t = a'(z_t) * (h_t - v_t) = e_t * (h_t^2 - 1) (tanh) or -e_t (identity)."""
        hs, E, x = hs.transpose(0, 1), E.transpose(0, 1), x.transpose(0, 1)  # time-major
        grads = _Grads(hs, x.shape[-1])
        for start, stop in grads.chunks():
            if self.activation == "tanh":
                delta = hs[start:stop].square().sub_(1).mul_(E[start:stop])
            else:
                delta = E[start:stop].neg()
            grads.add(x, hs, start, stop, delta)
        grads.write(self.rnn)

    @torch.no_grad()
    def graph_backward(self, x: Tensor, hs: Tensor, E: Tensor) -> None:
        """TP's update="graph": the gradient of J through the unrolled forward (what autograd on
        `states` gives), by hand. With delta_t = dJ/dz_t, z_t = W h_{t-1} + U x_t + b:

            delta_t = a'(z_t) * (e_t - W^T delta_{t+1})      (delta_{T+1} = 0)

        one (d, d) product per step, last chunk of steps first; each chunk's deltas then enter
        the parameter gradients, so no full-size buffer is needed."""
        hs, E, x = hs.transpose(0, 1), E.transpose(0, 1), x.transpose(0, 1)  # time-major
        grads, W, tanh = _Grads(hs, x.shape[-1]), self.rnn.weight_hh_l0, self.activation == "tanh"
        buffer, carry = torch.empty_like(hs[0]), torch.empty_like(hs[0])  # (B, d)
        later = None  # delta_{t+1}; None at t = T - 1
        for start, stop in reversed(grads.chunks()):
            states = hs[start:stop]
            delta = torch.mul(states, states).sub_(1) if tanh else torch.empty_like(states)
            steps = delta.unbind(0)  # tanh: h_t^2 - 1 = -a'(z_t), overwritten by delta_t
            for t in range(stop - 1, start - 1, -1):
                step, e = steps[t - start], E[t]
                if tanh and later is None:
                    step.mul_(e)
                elif tanh:  # (h_t^2 - 1) * (e_t - delta_{t+1} W)
                    step.mul_(torch.addmm(e, later, W, alpha=-1, out=buffer))
                elif later is None:
                    torch.neg(e, out=step)
                else:  # identity: delta_{t+1} W - e_t
                    torch.mm(later, W, out=step).sub_(e)
                later = step
            grads.add(x, hs, start, stop, delta)
            later = carry.copy_(later)  # the chunk's buffer goes; its first delta is needed next
        grads.write(self.rnn)

    def predict(self, hs: Tensor) -> Tensor:
        """Readout of the last state: (B, T, d) -> (B, output_size)."""
        return self.readout(hs[:, -1])

    def forward(self, x: Tensor) -> Tensor:
        """predict(states(x)), reading nn.RNN's h_n: BP's backward then never touches the
        (B, T, d) output sequence (no full-size zero gradient, no copy)."""
        if self.activation == "identity":
            return self.predict(self.states(x))
        return self.readout(self.rnn(x)[1][-1])  # h_n (1, B, d) -> (B, d)

    def check_inputs(self, x: Tensor) -> None:
        """ValueError unless x is float inputs (B, T, n) with n this model's input size."""
        check_float_inputs(x, self.rnn.input_size, type(self).__name__)

    def check_tp(self, targets: str | None = "linearized") -> None:
        """TP inverts the activation: only tanh and identity RNNs qualify (every rule)."""
        self.check_tp_options({"activation": self.activation}, targets)

    @classmethod
    def check_tp_options(cls, options: dict, targets: str | None) -> None:
        """ValueError unless TP (target rule `targets`; None: DTP, no rule of the model) can
        train this model with these options (the model's config section)."""
        activation = options.get("activation", "tanh")
        if activation not in INVERTIBLE:
            raise ValueError(
                f"model.activation={activation!r} is BP-only: TP and DTP invert the "
                f"activation; accepted: {list(INVERTIBLE)}"
            )

    def regularized_inverse(self, x: Tensor, hs: Tensor, reg: float) -> RNNInverse:
        """The layer inverses psi_t^{-1} at the current parameters (one factorisation)."""
        self.check_tp()
        return RNNInverse(
            self.rnn.weight_hh_l0.detach(),
            self.rnn.weight_ih_l0.detach(),
            self.bias.detach(),
            self.activation,
            reg,
            x,
            hs,
        )


class _Grads:
    """Parameter gradients of the recurrence, sum_t delta_t^T [h_{t-1}, x_t, 1], accumulated chunk
    by chunk of steps so the deltas (dJ/dz_t) never need a full (T, B, d) buffer. Rows are
    time-major (T, B, .), the memory order of the states and of TP's targets, so the reshapes
    are free views for them (copies otherwise, still correct); h_{t-1} is a shifted view."""

    def __init__(self, hs: Tensor, n: int):
        T, B, d = hs.shape
        self.T, self.B, self.d, self.n = T, B, d, n
        self.W, self.U, self.b = hs.new_zeros(d, d), hs.new_zeros(d, n), hs.new_zeros(d)

    def chunks(self) -> list[tuple[int, int]]:
        """[start, stop) ranges of steps, each at most CHUNK_ELEMENTS per (T, B, .) row."""
        size = max(1, CHUNK_ELEMENTS // (self.B * max(self.d, self.n)))
        return [(start, min(start + size, self.T)) for start in range(0, self.T, size)]

    def add(self, x: Tensor, hs: Tensor, start: int, stop: int, delta: Tensor) -> None:
        """x (T, B, n), hs (T, B, d); delta (stop - start, B, d) the deltas of those steps."""
        delta = delta.reshape(-1, self.d)
        self.U.addmm_(delta.T, x[start:stop].reshape(-1, self.n))
        self.b.add_(delta.sum(0))
        first = max(start, 1)  # h_0 = 0: step 0 adds nothing to W's gradient
        if first < stop:
            self.W.addmm_(delta[(first - start) * self.B :].T, hs[first - 1 : stop - 1].reshape(-1, self.d))

    def write(self, rnn: nn.RNN) -> None:
        """Accumulate into `.grad` of nn.RNN's parameters (both biases get b's gradient)."""
        for name, grad in (
            ("weight_hh_l0", self.W),
            ("weight_ih_l0", self.U),
            ("bias_ih_l0", self.b),
            ("bias_hh_l0", self.b),
        ):
            param = getattr(rnn, name)
            param.grad = grad if param.grad is None else param.grad + grad
