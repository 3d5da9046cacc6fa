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


def bp_reference(model: nn.Module, x: Tensor, y: Tensor, loss_fn):
    """One BP pass that touches no `.grad`: per-step adjoint norms ||dl/dh_t|| averaged over
    the batch (T,), and the BP gradient of every parameter {name: tensor}."""
    names, params = zip(*[(n, p) for n, p in model.named_parameters() if p.requires_grad])
    with torch.enable_grad():
        hs = model.states(x)  # (B, T, d)
        loss = loss_fn(model.predict(hs), y)
        grads = torch.autograd.grad(loss, (hs, *params), allow_unused=True)
    adjoint_norms = grads[0].norm(dim=-1).mean(0)  # (T,)
    return adjoint_norms, dict(zip(names, grads[1:]))


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
