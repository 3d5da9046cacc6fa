"""Diagnostics: BP adjoints through the recurrence, cosines."""

import torch
import torch.nn.functional as F

import tpri
from tpri.diagnostics import bp_adjoints, bp_gradients, cosines


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
