"""Diagnostics: BP adjoints through the recurrence, cosines."""

import pytest
import torch
import torch.nn.functional as F

import tpri
from tpri.algorithm.diagnostics import (
    bp_adjoints,
    bp_gradients,
    cosines,
    direction_norm,
    exact_norm,
    step_norms,
)


def test_bp_adjoints_are_total_derivatives_through_the_recurrence():
    torch.manual_seed(0)
    model = tpri.RNN(3, 5, 2).double()
    x, y = torch.randn(4, 6, 3, dtype=torch.float64), torch.randint(2, (4,))
    # reference: unroll by hand, keeping every state as a graph node
    W, U, b = model.rnn.weight_hh_l0, model.rnn.weight_ih_l0, model.bias
    h, hs = torch.zeros(4, 5, dtype=torch.float64), []
    for t in range(6):
        h = torch.tanh(h @ W.T + x[:, t] @ U.T + b)
        h.retain_grad()
        hs.append(h)
    F.cross_entropy(model.readout(h), y).backward()
    expected = torch.stack([h.grad for h in hs], 1)
    adjoints = bp_adjoints(model, x, y, F.cross_entropy)
    torch.testing.assert_close(adjoints, expected)
    assert adjoints[:, 0].abs().max() > 0  # the early steps see the loss too


def test_cosine_of_tp_direction_at_one_step_is_one():
    torch.manual_seed(0)
    model = tpri.RNN(3, 5, 2).double()
    x, y = torch.randn(4, 1, 3, dtype=torch.float64), torch.randint(2, (4,))
    model.zero_grad()
    tpri.TargetProp(0.3, 1.0).backward(model, x, y, F.cross_entropy)
    directions = {n: p.grad for n, p in model.named_parameters()}
    values = cosines(directions, bp_gradients(model, x, y, F.cross_entropy))
    assert torch.isnan(torch.tensor(values.pop("rnn.weight_hh_l0")))  # h_0 = 0: zero gradient
    for name, value in values.items():
        assert abs(value - 1) < 1e-9, name


def test_norms_of_tiny_vectors_are_not_underflowed_to_zero():
    tiny = torch.full((2, 3, 100), 1e-30)  # float32: each square (1e-60) underflows to 0
    assert tiny.norm(dim=-1).max() == 0  # what a float32 norm would log
    norms = step_norms(tiny)
    assert norms == pytest.approx([1e-29] * 3, rel=1e-6)  # sqrt(100) * 1e-30
    assert exact_norm(torch.tensor([3e-40, 4e-40]), dim=0).item() == pytest.approx(5e-40, rel=1e-5)
    assert exact_norm(torch.tensor([3e200, 4e200], dtype=torch.float64), dim=0).item() == pytest.approx(5e200)
    assert step_norms(torch.zeros(2, 3, 4)) == [0.0, 0.0, 0.0]  # 0 only for exact zeros


def test_tp_displacement_norms_are_nonzero_wherever_the_displacement_is():
    torch.manual_seed(0)
    model = tpri.RNN(4, 100, 4)
    x, y = torch.randn(8, 60, 4), torch.randint(4, (8,))
    tp = tpri.TargetProp(1e-2, 10.0)
    tp.backward(model, x, y, F.cross_entropy)
    E = tp.displacements.double()  # (B, T, d)
    nonzero = (E.abs().amax(-1) > 0).any(0)
    norms = torch.tensor(step_norms(tp.displacements))
    assert (norms[nonzero] > 0).all()
    assert (norms[~nonzero] == 0).all()
    # the early steps' displacements are far below float32's squared range here: a float32
    # norm logs 0 at steps where the displacement is not 0
    float32_zeros = (tp.displacements.norm(dim=-1).mean(0) == 0).sum()
    assert float32_zeros > (norms == 0).sum()
    assert norms[norms > 0].min() < 1e-23


def test_direction_norm_sums_the_recurrence_tensors_before_the_step():
    model = tpri.RNN(3, 5, 2)
    for p in model.parameters():
        p.grad = torch.full_like(p, 2.0)
    expected = sum(2.0 * p.numel() ** 0.5 for p in model.rnn.parameters())
    assert direction_norm(model) == pytest.approx(expected)  # the readout is not counted
    assert direction_norm(tpri.RNN(3, 5, 2)) != direction_norm(tpri.RNN(3, 5, 2))  # NaN: no grad yet
