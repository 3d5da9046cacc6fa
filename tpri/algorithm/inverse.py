"""Regularized inverse of one step of a tanh / identity RNN (spec, step 3).

    psi_t^{-1}(v) = argmin_h ||a^{-1}(v) - (W h + U x_t + b)||^2 + r ||h||^2
                  = (W^T W + r I)^{-1} W^T (a^{-1}(v) - U x_t - b)

W^T W + r I is factorised once (Cholesky) and the d x d matrix A = (W^T W + r I)^{-1} W^T is
formed once, so each time step costs elementwise work plus one (B, d) @ (d, d) product.
Batches are rows: a row vector s maps to s @ A^T. The per-step factors a rule needs (1 / a' for
`linearized`, a^{-1}(h_t) for `difference`) are computed once, in place in one (T, B, d) buffer,
and only for the rule that is used.
"""

from __future__ import annotations

import torch
from torch import Tensor

CLAMP_EPS = 1e-3  # a^{-1}(v) = atanh(clamp(v, -1 + eps, 1 - eps)) for tanh
# Whole-sequence elementwise work runs in chunks of steps of at most this many elements (1 MiB
# in float32), so its temporaries stay small next to the (T, B, d) states.
CHUNK_ELEMENTS = 2**18


class Diverged(RuntimeError):
    """Training left the numerically valid region (failed factorisation, non-finite values)."""


def _clamp(h: Tensor) -> Tensor:
    return h.clamp(-1 + CLAMP_EPS, 1 - CLAMP_EPS)


def previous_states(hs: Tensor) -> Tensor:
    """h_{t-1} for every t, with h_0 = 0: (B, T, d) -> (B, T, d)."""
    return torch.cat([torch.zeros_like(hs[:, :1]), hs[:, :-1]], 1)


def regularized_pinv_t(W: Tensor, reg: float) -> Tensor:
    """((W^T W + r I)^{-1} W^T)^T for W (..., d, d), batched over leading dims: one Cholesky
    factorisation each. Raises Diverged when W^T W + r I is not numerically positive definite."""
    eye = torch.eye(W.shape[-1], dtype=W.dtype, device=W.device)
    chol, info = torch.linalg.cholesky_ex(W.mT @ W + reg * eye)
    if ((info != 0).any() | ~torch.isfinite(chol).all()).item():  # one host sync on a GPU
        raise Diverged(f"Cholesky factorisation of W^T W + reg I failed (reg={reg})")
    return W @ torch.cholesky_inverse(chol)  # W M^{-1} = (M^{-1} W^T)^T, M symmetric


class RNNInverse:
    """Layer inverses of h_t = a(W h_{t-1} + U x_t + b) at fixed parameters.

    Time is the leading axis of the cached tensors; `k` indexes 0-based steps, so `k` holds
    h_{k+1}, and the methods map a quantity at step k to step k - 1.

    Args:
        W (d, d), U (d, n), b (d,): the recurrence's parameters (detached).
        activation: "tanh" or "identity".
        reg: r >= 0.
        x: inputs (B, T, n); hs: forward states (B, T, d), detached.
    Raises:
        Diverged: when W^T W + r I is not numerically positive definite.
    """

    def __init__(self, W: Tensor, U: Tensor, b: Tensor, activation: str, reg: float, x: Tensor, hs: Tensor):
        self.activation, self.U, self.b = activation, U, b
        self.x, self.h = x.transpose(0, 1), hs.transpose(0, 1)  # (T, B, n), (T, B, d)
        self.h_steps = self.h.unbind(0)  # per-step views, indexed in the sweep's hot loop
        self.At = regularized_pinv_t(W, reg)  # (d, d): A^T
        self.scratch = torch.empty_like(self.h_steps[0])  # (B, d) scratch for the sweep
        self._slope_inv = self._h_inv = None

    # --- the activation and its inverse --------------------------------------------------
    def act_inv(self, v: Tensor) -> Tensor:
        """a^{-1}(v), with the tanh input clamped to [-1 + eps, 1 - eps]."""
        return torch.atanh(_clamp(v)) if self.activation == "tanh" else v

    def slope_inv_into(self, out: Tensor) -> Tensor | None:
        """Write 1 / a'(a^{-1}(h_t)) = 1 / (1 - clamp(h_t)^2) into `out` (T, B, d) in place, no
        temporaries; None (and `out` untouched) for the identity, whose slope is 1."""
        if self.activation != "tanh":
            return None
        torch.clamp(self.h, -1 + CLAMP_EPS, 1 - CLAMP_EPS, out=out)
        return out.mul_(out).sub_(1).neg_().reciprocal_()  # 1 / (1 - c^2)

    def mul_slope_(self, F: Tensor) -> Tensor:
        """F (T, B, d) *= a'(a^{-1}(h_t)) = 1 - clamp(h_t)^2 in place, chunk by chunk of steps
        (the only temporary); the identity leaves F as it is."""
        if self.activation == "tanh":
            T, B, d = F.shape
            size = max(1, CHUNK_ELEMENTS // (B * d))
            for start in range(0, T, size):
                c = _clamp(self.h[start : start + size])
                F[start : start + size].mul_(c.mul_(c).sub_(1).neg_())  # 1 - c^2
        return F

    def slope_inv(self) -> tuple[Tensor, ...] | None:
        """1 / a'(a^{-1}(h_t)) per step, T tensors (B, d), or None for the identity (slope 1)."""
        if self._slope_inv is None and self.activation == "tanh":
            self._slope_inv = self.slope_inv_into(torch.empty_like(self.h)).unbind(0)
        return self._slope_inv

    def h_inv(self) -> tuple[Tensor, ...]:
        """a^{-1}(h_t) per step, T tensors (B, d) (one (T, B, d) buffer, filled in place)."""
        if self._h_inv is None:
            h_inv = self.h
            if self.activation == "tanh":
                h_inv = torch.clamp(self.h, -1 + CLAMP_EPS, 1 - CLAMP_EPS).atanh_()
            self._h_inv = h_inv.unbind(0)
        return self._h_inv

    # --- the regularized inverse and the three target rules ------------------------------
    def apply(self, s: Tensor, out: Tensor | None = None) -> Tensor:
        """s @ A^T, i.e. (W^T W + r I)^{-1} W^T s for each row s; (B, d) -> (B, d)."""
        return torch.mm(s, self.At, out=out)

    def psi_inv(self, v: Tensor, k: int) -> Tensor:
        """psi^{-1} of step k applied to v (B, d): the regularized pre-image at step k - 1."""
        drive = self.x[k] @ self.U.T + self.b  # (B, d): U x_t + b
        return self.apply(self.act_inv(v) - drive)

    # Each rule maps the displacement e = v - h at step k (B, d) to the one at step k - 1.
    def linearized(self, e: Tensor, k: int, out: Tensor | None = None) -> Tensor:
        """Jacobian of psi^{-1} at h_k applied to e: A (e / a'(a^{-1}(h_k)))."""
        slope_inv = self.slope_inv()
        if slope_inv is None:  # identity: a' = 1
            return self.apply(e, out)
        return self.apply(torch.mul(e, slope_inv[k], out=self.scratch), out)

    def difference(self, e: Tensor, k: int, out: Tensor | None = None) -> Tensor:
        """psi^{-1}(h_k + e) - psi^{-1}(h_k) (U x_t + b cancels)."""
        return self.apply(self.act_inv(self.h_steps[k] + e) - self.h_inv()[k], out)

    def inverse(self, e: Tensor, k: int, out: Tensor | None = None) -> Tensor:
        """Plain TP: psi^{-1}(h_k + e) - h_{k-1}."""
        return torch.sub(self.psi_inv(self.h_steps[k] + e, k), self.h_steps[k - 1], out=out)
