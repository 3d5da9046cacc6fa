"""Diagnostics logged at evaluation time: how TP's direction relates to back-propagation.

Every norm logged here is computed in float64 after dividing each vector by its largest entry,
so that no square underflows: a float32 displacement of 1e-30 has the norm 1e-30, not 0, and a
norm is 0 only when every entry is exactly 0.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


def recurrent_weight(model: nn.Module) -> Tensor:
    """The hidden-to-hidden matrix W (`...weight_hh_l0`) of a model."""
    for name, param in model.named_parameters():
        if name.endswith("weight_hh_l0"):
            return param
    raise ValueError("the model has no recurrent weight named '*weight_hh_l0'")


def exact_norm(values: Tensor, dim=-1) -> Tensor:
    """The 2-norm of `values` over `dim` in float64, scaled so that no square underflows or
    overflows: ||v|| = m ||v / m|| with m = max |v_i| (0 exactly when v is 0)."""
    values = values.detach().to(torch.float64)
    scale = values.abs().amax(dim=dim, keepdim=True)
    safe = torch.where(scale > 0, scale, torch.ones_like(scale))
    return (values / safe).norm(dim=dim) * scale.squeeze(dim)


def step_norms(values: Tensor) -> list[float]:
    """Per time step t, the mean over the batch of ||values[b, t, :]|| (exact_norm), for
    values of shape (B, T, d): T floats."""
    return exact_norm(values, dim=-1).mean(0).tolist()


def recurrent_parameters(model: nn.Module) -> list[nn.Parameter]:
    """The parameters of the recurrence (W, U, biases: `model.rnn`), not the readout."""
    core = getattr(model, "rnn", None)
    return list(core.parameters()) if isinstance(core, nn.Module) else list(model.parameters())


def direction_norm(model: nn.Module) -> float:
    """The norm of the update direction before the step (before lr and momentum): the sum over
    the recurrence's tensors of ||p.grad||, as the paper plots it (NaN before any direction)."""
    grads = [p.grad for p in recurrent_parameters(model) if p.grad is not None]
    if not grads:
        return float("nan")
    return float(sum(exact_norm(g.flatten(), dim=0) for g in grads))


def bp_adjoints(model: nn.Module, x: Tensor, y: Tensor, loss_fn) -> Tensor:
    """BP adjoints dl/dh_t (total derivative, through the later steps), shape (B, T, d).

    lambda_T = dl/dh_T,  lambda_{t-1} = (direct dl/dh_{t-1}) + J_t^T lambda_t, with J_t the
    Jacobian of one step `model.cell` in h_{t-1}; one vector-Jacobian product per step.
    """
    with torch.enable_grad():
        hs = model.states(x).detach()  # (B, T, d)
        leaf = hs.clone().requires_grad_()
        (direct,) = torch.autograd.grad(loss_fn(model.predict(leaf), y), leaf)
        adjoints = torch.empty_like(hs)
        adjoints[:, -1] = direct[:, -1]
        for k in range(hs.shape[1] - 1, 0, -1):
            h_prev = hs[:, k - 1].clone().requires_grad_()
            (back,) = torch.autograd.grad(model.cell(h_prev, x[:, k]), h_prev, adjoints[:, k])
            adjoints[:, k - 1] = direct[:, k - 1] + back
    return adjoints


def bp_gradients(model: nn.Module, x: Tensor, y: Tensor, loss_fn) -> dict[str, Tensor]:
    """The BP gradient of every trainable parameter, without touching `.grad`."""
    names, params = zip(*[(n, p) for n, p in model.named_parameters() if p.requires_grad])
    with torch.enable_grad():
        grads = torch.autograd.grad(loss_fn(model(x), y), params, allow_unused=True)
    return dict(zip(names, grads))


def cosines(directions: dict[str, Tensor], references: dict[str, Tensor]) -> dict[str, float]:
    """Cosine similarity per parameter tensor (NaN where either vector is zero or missing)."""
    out = {}
    for name, ref in references.items():
        d = directions.get(name)
        if d is None or ref is None or d.norm() == 0 or ref.norm() == 0:
            out[name] = float("nan")
        else:
            out[name] = torch.nn.functional.cosine_similarity(d.flatten(), ref.flatten(), 0).item()
    return out
