"""The facts of the spec ("Facts that tests can pin down") and the TP gradient identities."""

import pytest
import torch
import torch.nn.functional as F
from problems import assert_close, direction
from problems import rnn_problem as make_problem

import tpri
from tpri.algorithm.tp import TARGETS, UPDATES

RECURRENT = ("rnn.weight_hh_l0", "rnn.weight_ih_l0", "rnn.bias_ih_l0", "rnn.bias_hh_l0")
READOUT = ("readout.weight", "readout.bias")


@pytest.mark.parametrize("targets", TARGETS)
@pytest.mark.parametrize("update", UPDATES)
def test_single_step_direction_is_scaled_bp_gradient(targets, update):
    model, x, y = make_problem(T=1)
    gamma = 0.37
    tp = direction(tpri.TargetProp(gamma, reg=0.5, targets=targets, update=update), model, x, y)
    bp = direction(tpri.Backprop(), model, x, y)
    assert_close({k: tp[k] for k in RECURRENT}, {k: gamma * bp[k] for k in RECURRENT})
    assert_close({k: tp[k] for k in READOUT}, {k: bp[k] for k in READOUT})


@pytest.mark.parametrize("targets", ["linearized", "difference"])
def test_infinite_reg_gives_scaled_bp_gradient_in_graph_mode(targets):
    model, x, y = make_problem(T=7)
    gamma = 0.1
    method = tpri.TargetProp(gamma, reg=1e12, targets=targets, update="graph")
    tp = direction(method, model, x, y)
    bp = direction(tpri.Backprop(), model, x, y)
    assert method.displacements[:, :-1].abs().max() < 1e-9  # only the top target moves
    assert_close({k: tp[k] for k in RECURRENT}, {k: gamma * bp[k] for k in RECURRENT}, rtol=1e-6, atol=1e-12)


def test_infinite_reg_sends_plain_inverse_targets_to_zero():
    """Plain TP has no displacement form: psi^{-1} -> 0, so v_t -> 0 below the top."""
    model, x, y = make_problem(T=5)
    method = tpri.TargetProp(0.1, reg=1e12, targets="inverse")
    direction(method, model, x, y)
    targets = model.states(x).detach() + method.displacements
    assert targets[:, :-1].abs().max() < 1e-9


def test_identity_activation_zero_reg_all_rules_agree_and_invert():
    model, x, y = make_problem(T=8, activation="identity")
    h = model.states(x).detach()
    inverse = model.regularized_inverse(x, h, reg=1e-12)
    for k in range(1, 8):  # psi_t^{-1}(h_t) = h_{t-1}
        torch.testing.assert_close(inverse.psi_inv(h[:, k], k), h[:, k - 1])
    displacements = []
    for targets in TARGETS:
        method = tpri.TargetProp(0.5, reg=1e-12, targets=targets)
        direction(method, model, x, y)
        displacements.append(method.displacements)
    torch.testing.assert_close(displacements[0], displacements[1])
    torch.testing.assert_close(displacements[0], displacements[2])


def test_difference_and_linearized_agree_to_first_order():
    model, x, y = make_problem(T=6)
    gaps = []
    for gamma in (1e-2, 1e-3, 1e-4):
        lin, diff = (tpri.TargetProp(gamma, 1.0, targets=t) for t in ("linearized", "difference"))
        direction(lin, model, x, y)
        direction(diff, model, x, y)
        gaps.append((lin.displacements - diff.displacements).norm() / lin.displacements.norm())
    # the relative gap shrinks like gamma: each 10x smaller step gives a ~10x smaller gap
    assert gaps[0] < 0.1
    assert 7 < gaps[0] / gaps[1] < 13 and 7 < gaps[1] / gaps[2] < 13


@pytest.mark.parametrize("reg", [1e-3, 1.0, 10.0])
def test_regularized_inverse_is_least_squares_solution(reg):
    model, x, _ = make_problem(T=4)
    h = model.states(x).detach()
    inverse = model.regularized_inverse(x, h, reg)
    W, U, b = model.rnn.weight_hh_l0.detach(), model.rnn.weight_ih_l0.detach(), model.bias.detach()
    d = W.shape[0]
    v = 0.9 * torch.tanh(torch.randn_like(h[:, 2]))
    rhs = torch.atanh(v) - x[:, 2] @ U.T - b  # (B, d)
    stacked = torch.cat([W, reg**0.5 * torch.eye(d, dtype=W.dtype)])  # (2d, d)
    padded = torch.cat([rhs, torch.zeros_like(rhs)], 1).T  # (2d, B)
    expected = torch.linalg.lstsq(stacked, padded).solution.T
    torch.testing.assert_close(inverse.psi_inv(v, 2), expected)


def naive_displacements(model, x, y, gamma, reg):
    """Linearized targets from the formula, step by step with an explicit inverse."""
    hs = model.states(x).detach()
    leaf = hs.clone().requires_grad_()
    F.cross_entropy(model.predict(leaf), y).backward()
    W = model.rnn.weight_hh_l0.detach()
    A = torch.linalg.inv(W.T @ W + reg * torch.eye(W.shape[0], dtype=W.dtype)) @ W.T
    T = hs.shape[1]
    v = [None] * T
    v[T - 1] = hs[:, -1] - gamma * leaf.grad[:, -1]
    for t in range(T - 1, 0, -1):
        slope = 1 - hs[:, t].clamp(-1 + 1e-3, 1 - 1e-3) ** 2
        slope = slope if model.activation == "tanh" else torch.ones_like(slope)
        v[t - 1] = hs[:, t - 1] + ((v[t] - hs[:, t]) / slope) @ A.T
    return torch.stack(v, 1), hs


@pytest.mark.parametrize("activation", ["tanh", "identity"])
@pytest.mark.parametrize("update", UPDATES)
def test_direction_is_gradient_of_surrogate(update, activation):
    """grad J with J = sum_t sum_batch 1/2 ||h_t - v_t||^2, from an independent autograd."""
    model, x, y = make_problem(T=6, activation=activation)
    gamma, reg = 0.2, 0.7
    tp = direction(tpri.TargetProp(gamma, reg, update=update), model, x, y)
    v, hs = naive_displacements(model, x, y, gamma, reg)
    model.zero_grad()
    if update == "graph":
        states = model.states(x)
    else:  # each step from the forward value of h_{t-1}
        h_prev = torch.cat([torch.zeros_like(hs[:, :1]), hs[:, :-1]], 1)
        W, U = model.rnn.weight_hh_l0, model.rnn.weight_ih_l0
        states = h_prev @ W.T + x @ U.T + model.bias
        states = torch.tanh(states) if activation == "tanh" else states
    (0.5 * (states - v).pow(2).sum()).backward()
    assert_close(
        {k: tp[k] for k in RECURRENT}, {k: p.grad for k, p in model.named_parameters() if k in RECURRENT}
    )


def test_factorisation_failure_raises_diverged():
    model, x, y = make_problem(T=4)
    with torch.no_grad():
        model.rnn.weight_hh_l0.zero_()  # singular W, no regularization
    with pytest.raises(tpri.Diverged):
        direction(tpri.TargetProp(0.1, reg=0.0), model, x, y)
    with torch.no_grad():
        model.rnn.weight_hh_l0.fill_(float("nan"))
    with pytest.raises(tpri.Diverged):
        direction(tpri.TargetProp(0.1, reg=1.0), model, x, y)


def test_relu_rnn_is_rejected_by_tp_but_trained_by_bp():
    model, x, y = make_problem(activation="relu")
    direction(tpri.Backprop(), model, x, y)
    with pytest.raises(ValueError, match="activation"):
        direction(tpri.TargetProp(0.1, 1.0), model, x, y)
    with pytest.raises(ValueError, match="activation"):  # the library call on its own too
        model.regularized_inverse(x, model.states(x).detach(), 1.0)


@pytest.mark.parametrize(
    "kwargs, key",
    [
        (dict(lr_target=-1.0, reg=1.0), "lr_target"),
        (dict(lr_target=0.1, reg=-1.0), "reg"),
        (dict(lr_target=0.1, reg=float("nan")), "reg"),
        (dict(lr_target=0.1, reg=1.0, targets="exact"), "targets"),
        (dict(lr_target=0.1, reg=1.0, update="global"), "update"),
    ],
)
def test_bad_arguments_name_the_key(kwargs, key):
    with pytest.raises(ValueError, match=key):
        tpri.TargetProp(**kwargs)


def test_model_parameters_follow_torch_rnn_names_and_paper_init():
    model = tpri.RNN(6, 16, 4)
    names = {n for n, _ in model.named_parameters()}
    assert names == {*RECURRENT, *READOUT}
    W = model.rnn.weight_hh_l0.detach()
    torch.testing.assert_close(W @ W.T, torch.eye(16), atol=1e-5, rtol=0)
    U = model.rnn.weight_ih_l0.detach()  # (16, 6): orthonormal columns
    torch.testing.assert_close(U.T @ U, torch.eye(6), atol=1e-5, rtol=0)
    assert model.bias.abs().max() == 0 and model.readout.bias.abs().max() == 0


def test_identity_rnn_matches_its_recurrence():
    model, x, _ = make_problem(T=5, activation="identity")
    W, U, b = model.rnn.weight_hh_l0, model.rnn.weight_ih_l0, model.bias
    h = torch.zeros(x.shape[0], W.shape[0], dtype=x.dtype)
    for t in range(5):
        h = h @ W.T + x[:, t] @ U.T + b
    torch.testing.assert_close(model.states(x)[:, -1], h)
