"""Difference target propagation with a learned inverse (the paper's "DTP-PI" baseline).

Instead of the regularized inverse of a step, a parameterised reverse layer

    g(v, x_t) = tanh(V_r v + c_r + U_r x_t)          (maps h_t back to h_{t-1})

is trained by SGD (`lr_reverse`, one step per call, before the targets) on the noisy
reconstruction loss

    sum_{t=1..T} sum_{batch} || g(f(h_{t-1} + eps, x_t), x_t) - (h_{t-1} + eps) ||^2

(a SUM over batch and steps, like TP's surrogate J), eps ~ N(0, noise^2) drawn afresh each
call, f the model's recurrence step (h_0 = 0), and the targets follow the difference rule

    v_{t-1} = h_{t-1} + g(v_t, x_t) - g(h_t, x_t).

Everything else (top target, surrogate J, update modes) is TargetProp's.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from tpri.inverse import previous_states
from tpri.models import orthogonal_
from tpri.tp import TargetProp, check_number


class ReverseLayer(nn.Module):
    """g(v, x) = tanh(V_r v + c_r + U_r x): `hidden` holds (V_r, c_r), `input` holds U_r.
    Initialised like the paper's RNN: orthogonal weights, zero bias."""

    def __init__(self, hidden: int, input_size: int):
        super().__init__()
        self.hidden = nn.Linear(hidden, hidden)
        self.input = nn.Linear(input_size, hidden, bias=False)
        orthogonal_(self.hidden.weight)
        orthogonal_(self.input.weight)
        nn.init.zeros_(self.hidden.bias)

    def forward(self, v: Tensor, x: Tensor) -> Tensor:
        """v (..., d), x (..., n) -> (..., d)."""
        return torch.tanh(self.hidden(v) + self.input(x))


class LearnedInverse:
    """The difference rule with the reverse layer g in place of psi^{-1}, in the interface of
    tpri.inverse.RNNInverse (time-major, `k` a 0-based step mapped to step k - 1)."""

    def __init__(self, reverse: ReverseLayer, x: Tensor, hs: Tensor):
        self.reverse = reverse
        self.x, self.h = x.transpose(0, 1), hs.transpose(0, 1)  # (T, B, n), (T, B, d)
        self.g_h = reverse(self.h, self.x)  # (T, B, d): g(h_t, x_t) for every step at once

    def difference(self, e: Tensor, k: int, out: Tensor | None = None) -> Tensor:
        """g(h_k + e, x_k) - g(h_k, x_k): (B, d) -> (B, d)."""
        return torch.sub(self.reverse(self.h[k] + e, self.x[k]), self.g_h[k], out=out)


class DTP(TargetProp):
    """Difference target propagation with a learned reverse layer (DTP-PI).

    Same `.backward(model, inputs, labels, loss_fn)` as TargetProp. The reverse layer is
    created at the first call from the states' width and the inputs' width (float inputs
    (B, T, n)); `state_dict()` / `load_state_dict()` save and restore it with the noise
    generator, so a resumed run draws the same noise.

    Args:
        lr_target: gamma_h, the step of the top target (>= 0).
        lr_reverse: SGD step of the reverse layer on its reconstruction loss (>= 0).
        noise: standard deviation of the noise added to h_{t-1} in that loss (>= 0).
        update: "graph" or "local", as in TargetProp.
        seed: seeds the reverse layer's initialisation and the noise (drawn on the states'
            device: a run on a GPU draws other noise than on the CPU).

    After a call, `reverse_loss` holds the reconstruction loss of that call's SGD step.
    """

    def __init__(
        self, lr_target: float, lr_reverse: float, noise: float, update: str = "graph", seed: int = 0
    ):
        super().__init__(lr_target, reg=0.0, targets="difference", update=update)
        self.lr_reverse = check_number("lr_reverse", lr_reverse, 0.0, strict=False)
        self.noise = check_number("noise", noise, 0.0, strict=False)
        self.seed = seed
        self.generator = torch.Generator().manual_seed(seed)
        self.reverse: ReverseLayer | None = None
        self.reverse_loss: float | None = None

    def __repr__(self) -> str:
        return (
            f"DTP(lr_target={self.lr_target}, lr_reverse={self.lr_reverse}, "
            f"noise={self.noise}, update={self.update!r}, seed={self.seed})"
        )

    def check(self, model: nn.Module) -> None:
        """The reverse layer reads float inputs (B, T, n) and one loss at the last step; the
        model's activation must be invertible (`check_model`)."""
        self.check_model(type(model), {"activation": getattr(model, "activation", "tanh")}, {})

    @classmethod
    def check_model(cls, model_class: type, model_options: dict, options: dict) -> None:
        """ValueError unless DTP can train `model_class` with `model_options`."""
        if getattr(model_class, "per_step_loss", False):
            raise ValueError(
                "optimizer=dtp trains sequence-to-label models (model=rnn or gru); "
                "use optimizer=tp for text models"
            )
        if hasattr(model_class, "check_tp_options"):
            model_class.check_tp_options(model_options, None)

    def layer_inverse(self, model: nn.Module, inputs: Tensor, h: Tensor) -> "LearnedInverse":
        """The learned inverse, after one SGD step of the reverse layer."""
        return self.learned_inverse(model, inputs, h)

    def learned_inverse(self, model: nn.Module, x: Tensor, hs: Tensor) -> LearnedInverse:
        """One SGD step of the reverse layer on the forward states hs (B, T, d), then the
        difference rule with it."""
        if self.reverse is None:
            with torch.random.fork_rng(devices=[]):  # seeded init, global stream untouched
                torch.manual_seed(self.seed)
                self.reverse = ReverseLayer(hs.shape[-1], x.shape[-1]).to(hs)
        self._train_reverse(model, x, hs)
        return LearnedInverse(self.reverse, x, hs)

    def _train_reverse(self, model: nn.Module, x: Tensor, hs: Tensor) -> None:
        h_prev = previous_states(hs)  # (B, T, d)
        if self.generator.device != h_prev.device:  # first call on a GPU: the noise is drawn there
            self.generator = torch.Generator(device=h_prev.device).manual_seed(self.seed)
        eps = torch.randn(h_prev.shape, generator=self.generator, dtype=h_prev.dtype, device=h_prev.device)
        noisy = h_prev + self.noise * eps
        params = list(self.reverse.parameters())
        with torch.no_grad():
            stepped = model.cell(noisy, x)  # f(h_{t-1} + eps, x_t), a constant here
        with torch.enable_grad():
            loss = (self.reverse(stepped, x) - noisy).pow(2).sum()
            grads = torch.autograd.grad(loss, params)
        with torch.no_grad():
            for p, g in zip(params, grads):
                p.sub_(g, alpha=self.lr_reverse)
        self.reverse_loss = loss.item()

    def state_dict(self) -> dict:
        """The reverse layer (None before the first call) and the noise generator's state."""
        reverse = None if self.reverse is None else self.reverse.state_dict()
        return {
            "reverse": reverse,
            "generator": self.generator.get_state(),
            "generator_device": str(self.generator.device),
        }

    def load_state_dict(self, state: dict) -> None:
        self.generator = torch.Generator(device=state.get("generator_device", "cpu"))
        self.generator.set_state(state["generator"])
        self.reverse = None
        if state["reverse"] is not None:
            V, U = state["reverse"]["hidden.weight"], state["reverse"]["input.weight"]
            self.reverse = ReverseLayer(V.shape[0], U.shape[1]).to(V)
            self.reverse.load_state_dict(state["reverse"])
