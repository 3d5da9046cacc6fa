"""Diagnostics logged at evaluation time: how TP's direction relates to back-propagation."""

from __future__ import annotations

import torch
from torch import Tensor, nn


def recurrent_weight(model: nn.Module) -> Tensor:
    """The hidden-to-hidden matrix W (`...weight_hh_l0`) of a model."""
    for name, param in model.named_parameters():
        if name.endswith("weight_hh_l0"):
            return param
    raise ValueError("the model has no recurrent weight named '*weight_hh_l0'")


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
