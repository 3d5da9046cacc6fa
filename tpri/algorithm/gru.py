"""A GRU trained by TP: the model and the linearized regularized inverse of its cell.

The derivation, what is exact and what is approximated, is in docs/gru-tp.md. In short, the
Jacobian of one GRU step h -> h' is a sum over four "ports" (the three gates' hidden-to-hidden
products W_hr h, W_hz h, W_hn h and the skip connection z * h, whose matrix is I):

    J = sum_p diag(c_p) W_p,          W_p in (W_hr, W_hz, W_hn, I)

and the target rule maps a displacement e at h' to

    e_prev = sum_p A_p (c_p * e / S^2),    S = sum_p |c_p|,    A_p = (W_p^T W_p + r I)^{-1} W_p^T

(A_skip = I / (1 + r)): one regularized inverse per gate, the gains divided out like the tanh
RNN's 1 / a'. With a single port (skip closed, reset gate open, gates frozen) it is exactly the
tanh-RNN rule of tpri.algorithm.inverse.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from tpri.algorithm.inverse import CLAMP_EPS, previous_states, regularized_pinv_t
from tpri.algorithm.models import Sizes, check_float_inputs, orthogonal_
from tpri.spec import check_arguments, size

PORTS = ("r", "z", "n", "skip")  # the order of `port_gains`; r, z, n is torch's gate order
# Smallest total gain S, the tanh RNN's smallest slope a' = 1 - (1 - eps)^2 (its clamp).
MIN_GAIN = 1 - (1 - CLAMP_EPS) ** 2


class GRUInverse:
    """Linearized layer inverses of a GRU at fixed parameters (docs/gru-tp.md).

    Time is the leading axis, as in tpri.algorithm.inverse.RNNInverse: `k` indexes 0-based steps and
    the rule maps the displacement at step k to step k - 1.

    Args:
        W_hh (3d, d): the stacked hidden-to-hidden matrices [W_hr; W_hz; W_hn] (detached).
        gains (B, T, 4, d): the port gains c_p of every step (GRU.port_gains).
        reg: r >= 0.
        hs: forward states (B, T, d), detached.
    Raises:
        Diverged: when some W_g^T W_g + r I is not numerically positive definite.
    """

    def __init__(self, W_hh: Tensor, gains: Tensor, reg: float, hs: Tensor):
        d = hs.shape[-1]
        self.h = hs.transpose(0, 1)  # (T, B, d)
        At = regularized_pinv_t(W_hh.view(3, d, d), reg)  # (3, d, d), one factorisation per gate
        self.At = At.reshape(3 * d, d)  # rows: [A_r^T; A_z^T; A_n^T]
        S = gains.abs().sum(2, keepdim=True)  # (B, T, 1, d): the total gain of each unit
        shares = (gains / S).nan_to_num()  # c_p / S, signed; 0 where the step ignores h
        weights = (shares / S.clamp(min=MIN_GAIN)).transpose(0, 1)  # (T, B, 4, d): c_p / S^2
        self.gate_weights = weights[:, :, :3].contiguous().unbind(0)  # T x (B, 3, d)
        self.skip_weights = (weights[:, :, 3] / (1 + reg)).unbind(0)  # T x (B, d), A_skip folded in
        self._buffer = torch.empty_like(self.gate_weights[0])  # (B, 3, d) scratch

    def linearized(self, e: Tensor, k: int, out: Tensor | None = None) -> Tensor:
        """sum_p A_p (c_p * e / S^2) at step k: (B, d) -> (B, d)."""
        scaled = torch.mul(e.unsqueeze(1), self.gate_weights[k], out=self._buffer)  # (B, 3, d)
        out = torch.mm(scaled.flatten(1), self.At, out=out)  # the three gates in one product
        return out.addcmul_(e, self.skip_weights[k])  # + the skip port


@dataclass
class GRUOptions:
    """GRU's options: the config section `model` (gru)."""

    hidden: int = size()


class GRU(nn.Module):
    """GRU with a linear readout of the last state (sequence -> label), trainable by TP.

        r = sigmoid(W_ir x + b_ir + W_hr h + b_hr)
        z = sigmoid(W_iz x + b_iz + W_hz h + b_hz)
        n = tanh(W_in x + b_in + r * (W_hn h + b_hn))
        h' = (1 - z) * n + z * h,      y_hat = V h_T + c

    `self.rnn` is a `torch.nn.GRU(batch_first=True)` (parameters `weight_ih_l0`,
    `weight_hh_l0`, `bias_ih_l0`, `bias_hh_l0`, gates stacked r, z, n) and computes the states;
    `self.readout` is the `nn.Linear` (V, c).

    Args:
        input_size: n, features per time step.
        hidden: d, the width of the hidden state.
        output_size: number of classes (or 1 for regression).
    """

    per_step_loss = False  # the loss reads h_T only
    token_inputs = False
    label = "GRU"
    # memory facts (tpri.configs.resources, as tpri.algorithm.models.RNN's): three gates' weights; the gate
    # activations a step keeps with BP, the port gains with TP; the gates at evaluation
    # (nn.GRU's forward without autograd: about 5, measured on (1000, 1000, 6) -> d=64)
    GATES, BP_FLOATS, TP_FLOATS, EVAL_FLOATS = 3, 12, 20, 5
    Options = GRUOptions

    def __init__(self, input_size: int, hidden: int, output_size: int):
        super().__init__()
        sizes = dict(input_size=input_size, output_size=output_size)
        check_arguments(dict(hidden=hidden, **sizes), GRUOptions, Sizes)
        self.rnn = nn.GRU(input_size, hidden, batch_first=True)
        self.readout = nn.Linear(hidden, output_size)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """The paper's initialisation, per gate block: orthogonal weights, zero biases."""
        for weight in (self.rnn.weight_hh_l0, self.rnn.weight_ih_l0):
            for block in weight.detach().chunk(3, 0):  # views: r, z, n
                orthogonal_(block)
        orthogonal_(self.readout.weight)
        for bias in (self.rnn.bias_ih_l0, self.rnn.bias_hh_l0, self.readout.bias):
            nn.init.zeros_(bias)

    def gates(self, h_prev: Tensor, x: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """r, z, n and q = W_hn h_prev + b_hn for any batch shape: h_prev (..., d), x (..., n)."""
        ir, iz, in_ = (x @ self.rnn.weight_ih_l0.T + self.rnn.bias_ih_l0).chunk(3, -1)
        hr, hz, q = (h_prev @ self.rnn.weight_hh_l0.T + self.rnn.bias_hh_l0).chunk(3, -1)
        r, z = torch.sigmoid(ir + hr), torch.sigmoid(iz + hz)
        return r, z, torch.tanh(in_ + r * q), q

    def cell(self, h_prev: Tensor, x: Tensor) -> Tensor:
        """One GRU step for any batch shape: h_prev (..., d), x (..., n) -> (..., d).
        Used by TP's layer-local update."""
        _, z, n, _ = self.gates(h_prev, x)
        return n + z * (h_prev - n)

    def port_gains(self, h_prev: Tensor, x: Tensor) -> Tensor:
        """The diagonal factors c_p of dh'/dh = sum_p diag(c_p) W_p, ports (r, z, n, skip):
        h_prev (..., d), x (..., n) -> (..., 4, d)."""
        r, z, n, q = self.gates(h_prev, x)
        c_n = (1 - z) * (1 - n**2) * r  # through n's tanh and the reset product
        c_r = c_n * q * (1 - r)  # through r's sigmoid, then as c_n
        c_z = (h_prev - n) * z * (1 - z)  # through z's sigmoid
        return torch.stack([c_r, c_z, c_n, z], -2)

    def check_inputs(self, x: Tensor) -> None:
        """ValueError unless x is float inputs (B, T, n) with n this model's input size."""
        check_float_inputs(x, self.rnn.input_size, type(self).__name__)

    def states(self, x: Tensor) -> Tensor:
        """All hidden states h_1..h_T, shape (B, T, d), for inputs x of shape (B, T, n)."""
        return self.rnn(x)[0]

    def predict(self, hs: Tensor) -> Tensor:
        """Readout of the last state: (B, T, d) -> (B, output_size)."""
        return self.readout(hs[:, -1])

    def forward(self, x: Tensor) -> Tensor:
        """predict(states(x)) through nn.GRU's h_n, so BP's backward skips the output sequence."""
        return self.readout(self.rnn(x)[1][-1])

    def check_tp(self, targets: str | None) -> None:
        """Only the linearized rule exists for the GRU."""
        self.check_tp_options({}, targets)

    @classmethod
    def check_tp_options(cls, options: dict, targets: str | None) -> None:
        """ValueError for a TP target rule other than the linearized one (DTP: None, fine)."""
        if targets is not None and targets != "linearized":
            raise ValueError(
                f"optimizer.targets={targets!r} is not available for the GRU (its layer inverse "
                f"has no closed form, docs/gru-tp.md); accepted: ['linearized']"
            )

    @torch.no_grad()
    def regularized_inverse(self, x: Tensor, hs: Tensor, reg: float) -> GRUInverse:
        """The linearized layer inverses at the current parameters (one factorisation per
        gate); x (B, T, n), hs (B, T, d) the forward states."""
        gains = self.port_gains(previous_states(hs), x)  # (B, T, 4, d)
        return GRUInverse(self.rnn.weight_hh_l0, gains, reg, hs)
