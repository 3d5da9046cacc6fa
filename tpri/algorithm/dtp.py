"""Difference target propagation with a learned inverse (the paper's "DTP-PI" baseline).

Instead of the regularized inverse of a step, a parameterised reverse layer

    g(v, x_t) = tanh(V_r v + c_r + U x_t)          (maps h_t back to h_{t-1})

is trained (`lr_reverse`, one step per call, before the targets) on the noisy reconstruction
loss of the pairs (h_{t-1} + eps, x_t), t = 1..T,

    || g(f(h_{t-1} + eps, x_t), x_t) - (h_{t-1} + eps) ||^2

with eps ~ N(0, noise^2) drawn afresh each call and f the model's recurrence step (h_0 = 0),
and the targets follow the difference rule

    v_{t-1} = h_{t-1} + g(v_t, x_t) - g(h_t, x_t).

Two variants (`variant`):

- "authors" (the authors' code, the default): U is the FORWARD input weight of the RNN, shared
  and not trained by the reconstruction loss (only V_r, c_r are); the reconstruction loss is
  sum_t 1/2 ||.||^2 averaged over the batch, and the surrogate J = sum_t 1/2 ||h_t - v_t||^2
  is averaged over the batch too (divided by B). Needs a model with `input_weight` (model=rnn).
- "separate" (tpri's earlier variant): the reverse layer has its own U_r, trained with V_r and
  c_r; the reconstruction loss and J are SUMS over batch and steps, without the 1/2 in the
  reconstruction loss. With equal numbers, lr_reverse means 2B times and lr B times more.

The reverse layer's SGD step uses the forward optimizer's momentum and Nesterov flag (the
authors' two parameter groups of one optimizer). Everything else (top target, update modes) is
TargetProp's.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from tpri.algorithm.inverse import previous_states
from tpri.algorithm.models import orthogonal_
from tpri.algorithm.steps import SGDStep, check_step
from tpri.algorithm.tp import TargetOptions, TargetProp
from tpri.spec import Seeded, check_arguments, spec

VARIANTS = ("authors", "separate")


@dataclass
class DTPOptions(TargetOptions):
    """DTP's options: the config section `optimizer` (dtp) less the step's options (whose
    momentum and Nesterov flag its reverse layer shares, STEP_OPTIONS)."""

    variant: str = spec(choices=VARIANTS)
    lr_reverse: float = spec(ge=0)
    noise: float = spec(ge=0)


class ReverseLayer(nn.Module):
    """g(v, x) = tanh(V_r v + c_r + U x): `hidden` holds (V_r, c_r); `input` holds U_r in the
    separate variant, None when U is the forward's (passed to `drive`). Initialised like the
    paper's RNN: orthogonal weights, zero bias."""

    def __init__(self, hidden: int, input_size: int, separate: bool):
        super().__init__()
        self.hidden = nn.Linear(hidden, hidden)
        self.input = nn.Linear(input_size, hidden, bias=False) if separate else None
        orthogonal_(self.hidden.weight)
        if self.input is not None:
            orthogonal_(self.input.weight)
        nn.init.zeros_(self.hidden.bias)

    def drive(self, x: Tensor, shared: Tensor | None) -> Tensor:
        """U x for inputs x (..., n): U_r, or the forward's input weight `shared` (d, n)."""
        return self.input(x) if self.input is not None else x @ shared.T

    def forward(self, v: Tensor, ux: Tensor) -> Tensor:
        """v (..., d) and the drive U x (..., d) -> (..., d)."""
        return torch.tanh(self.hidden(v) + ux)


class LearnedInverse:
    """The difference rule with the reverse layer g in place of psi^{-1}, in the interface of
    tpri.algorithm.inverse.RNNInverse (time-major, `k` a 0-based step mapped to step k - 1)."""

    def __init__(self, reverse: ReverseLayer, ux: Tensor, hs: Tensor):
        self.reverse = reverse
        self.ux, self.h = ux.transpose(0, 1), hs.transpose(0, 1)  # (T, B, d), (T, B, d)
        self.g_h = reverse(self.h, self.ux)  # (T, B, d): g(h_t, x_t) for every step at once

    def difference(self, e: Tensor, k: int, out: Tensor | None = None) -> Tensor:
        """g(h_k + e, x_k) - g(h_k, x_k): (B, d) -> (B, d)."""
        return torch.sub(self.reverse(self.h[k] + e, self.ux[k]), self.g_h[k], out=out)


class DTP(TargetProp):
    """Difference target propagation with a learned reverse layer (DTP-PI).

    Same `.backward(model, inputs, labels, loss_fn)` as TargetProp. The reverse layer is
    created at the first call from the states' width and the inputs' width (float inputs
    (B, T, n)); `state_dict()` / `load_state_dict()` save and restore it with its optimizer's
    momentum and the noise generator, so a resumed run continues identically.

    Args:
        lr_target: gamma_h, the step of the top target (>= 0).
        lr_reverse: SGD step of the reverse layer on its reconstruction loss (>= 0).
        noise: standard deviation of the noise added to h_{t-1} in that loss (>= 0).
        update: "graph" or "local", as in TargetProp.
        seed: seeds the reverse layer's initialisation and the noise (drawn on the states'
            device: a run on a GPU draws other noise than on the CPU).
        variant: "authors" or "separate" (module docstring).
        momentum, nesterov: of the reverse layer's SGD (the forward optimizer's values).

    After a call, `reverse_loss` holds the reconstruction loss of that call's step.
    """

    Options = DTPOptions
    label = "DTP-PI"
    LABELLED = ("variant", "update")  # the default variant is the authors'
    STEP_OPTIONS = ("momentum", "nesterov")  # step options of the forward optimizer it shares
    # (B, T, d) tensors the reverse layer's training step holds at once (the states, the
    # previous ones, noise, noisy states, f of them, the drive, g's graph and its gradient):
    # the peak of a DTP step (tests/measure_memory.py, case DTP); no d x d inverse factors
    REVERSE_FLOATS = 10
    step_factors = False

    def __init__(
        self,
        lr_target: float,
        lr_reverse: float,
        noise: float,
        update: str = "graph",
        seed: int = 0,
        variant: str = "authors",
        momentum: float = 0.0,
        nesterov: bool = False,
    ):
        super().__init__(lr_target, reg=0.0, targets="difference", update=update)
        check_arguments(dict(variant=variant, lr_reverse=lr_reverse, noise=noise), DTPOptions)
        check_arguments(dict(momentum=momentum, nesterov=nesterov), SGDStep)
        check_arguments(dict(seed=seed), Seeded)
        check_step(dict(momentum=momentum, nesterov=nesterov))
        self.lr_reverse, self.noise, self.momentum = float(lr_reverse), float(noise), float(momentum)
        self.variant, self.nesterov, self.seed = variant, nesterov, seed
        self.generator = torch.Generator().manual_seed(seed)
        self.reverse: ReverseLayer | None = None
        self.optimizer: torch.optim.SGD | None = None
        self.reverse_loss: float | None = None

    def __repr__(self) -> str:
        return (
            f"DTP(lr_target={self.lr_target}, lr_reverse={self.lr_reverse}, noise={self.noise}, "
            f"update={self.update!r}, seed={self.seed}, variant={self.variant!r}, "
            f"momentum={self.momentum}, nesterov={self.nesterov})"
        )

    def check(self, model: nn.Module) -> None:
        """The reverse layer reads float inputs (B, T, n) and one loss at the last step; the
        model's activation must be invertible and the authors' variant shares the forward input
        weight of an Elman RNN (`check_model`)."""
        options = {"variant": self.variant}
        self.check_model(type(model), {"activation": getattr(model, "activation", "tanh")}, options)

    @classmethod
    def check_model(cls, model_class: type, model_options: dict, options: dict) -> None:
        """ValueError unless DTP with `options` (its config section) can train `model_class`
        with `model_options`."""
        if getattr(model_class, "per_step_loss", False):
            raise ValueError(
                "optimizer=dtp trains sequence-to-label models (model=rnn or gru); "
                "use optimizer=tp for text models"
            )
        if options.get("variant", "authors") == "authors" and not hasattr(model_class, "input_weight"):
            raise ValueError(
                f"optimizer.variant='authors' shares the forward input weight of model=rnn; "
                f"{model_class.__name__} has none: use optimizer.variant=separate"
            )
        if hasattr(model_class, "check_tp_options"):
            model_class.check_tp_options(model_options, None)

    def surrogate_scale(self, batch: int) -> float:
        """The authors' DTP averages J over the batch; the separate variant sums it."""
        return 1.0 / batch if self.variant == "authors" else 1.0

    def layer_inverse(self, model: nn.Module, inputs: Tensor, h: Tensor) -> LearnedInverse:
        """The learned inverse, after one step of the reverse layer on the forward states
        h (B, T, d)."""
        if self.reverse is None:
            self._create(h.shape[-1], inputs.shape[-1], h)
        shared = None if self.variant == "separate" else model.input_weight.detach()
        self._train_reverse(model, inputs, h, shared)
        with torch.no_grad():
            ux = self.reverse.drive(inputs, shared)
        return LearnedInverse(self.reverse, ux, h)

    def _create(self, hidden: int, input_size: int, like: Tensor) -> None:
        with torch.random.fork_rng(devices=[]):  # seeded init, global stream untouched
            torch.manual_seed(self.seed)
            self.reverse = ReverseLayer(hidden, input_size, separate=self.variant == "separate").to(like)
        self.optimizer = torch.optim.SGD(
            self.reverse.parameters(), lr=self.lr_reverse, momentum=self.momentum, nesterov=self.nesterov
        )

    def _train_reverse(self, model: nn.Module, x: Tensor, hs: Tensor, shared: Tensor | None) -> None:
        h_prev = previous_states(hs)  # (B, T, d)
        if self.generator.device != h_prev.device:  # first call on a GPU: the noise is drawn there
            self.generator = torch.Generator(device=h_prev.device).manual_seed(self.seed)
        eps = torch.randn(h_prev.shape, generator=self.generator, dtype=h_prev.dtype, device=h_prev.device)
        noisy = h_prev + self.noise * eps
        params = list(self.reverse.parameters())
        with torch.no_grad():
            stepped = model.cell(noisy, x)  # f(h_{t-1} + eps, x_t), a constant here
        with torch.enable_grad():
            squares = (self.reverse(stepped, self.reverse.drive(x, shared)) - noisy).pow(2).sum()
            loss = squares * (0.5 / len(hs)) if self.variant == "authors" else squares
            grads = torch.autograd.grad(loss, params)
        for p, g in zip(params, grads):
            p.grad = g
        self.optimizer.step()
        self.reverse_loss = loss.item()

    def state_dict(self) -> dict:
        """The reverse layer and its optimizer (None before the first call), the noise
        generator's state: copies, which later calls leave unchanged."""
        created = self.reverse is not None
        return {
            "variant": self.variant,
            "reverse": copy.deepcopy(self.reverse.state_dict()) if created else None,
            "optimizer": copy.deepcopy(self.optimizer.state_dict()) if created else None,
            "generator": self.generator.get_state(),
            "generator_device": str(self.generator.device),
        }

    def load_state_dict(self, state: dict) -> None:
        if state.get("variant", "separate") != self.variant:
            raise ValueError(
                f"a DTP checkpoint of variant {state.get('variant', 'separate')!r}, not {self.variant!r}"
            )
        self.generator = torch.Generator(device=state.get("generator_device", "cpu"))
        self.generator.set_state(state["generator"])
        self.reverse = self.optimizer = None
        if state["reverse"] is not None:
            V, U = state["reverse"]["hidden.weight"], state["reverse"].get("input.weight")
            self._create(V.shape[0], 1 if U is None else U.shape[1], V)
            self.reverse.load_state_dict(state["reverse"])
            if state.get("optimizer") is not None:
                self.optimizer.load_state_dict(state["optimizer"])
