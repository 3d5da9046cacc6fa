"""The GRU and its TP rule (docs/gru-tp.md): each piece of the derivation against autograd,
the limits where the rule is exact, the TP facts, and learning."""

import pytest
import torch
import torch.nn.functional as F
from problems import assert_close, direction
from torch.autograd.functional import jacobian

import tpri
from tpri.algorithm.gru import GRU, PORTS
from tpri.algorithm.inverse import RNNInverse
from tpri.algorithm.tp import UPDATES

RECURRENT = ("rnn.weight_hh_l0", "rnn.weight_ih_l0", "rnn.bias_ih_l0", "rnn.bias_hh_l0")
READOUT = ("readout.weight", "readout.bias")


def make_problem(T=6, B=5, n=3, d=4, classes=3, seed=0, noise=0.3):
    torch.manual_seed(seed)
    model = GRU(n, d, classes).double()
    with torch.no_grad():  # non-zero biases and non-orthogonal blocks exercise every term
        for p in model.parameters():
            p.add_(noise * torch.randn_like(p))
    x = torch.randn(B, T, n, dtype=torch.float64)
    y = torch.randint(classes, (B,))
    return model, x, y


def blocks(model):
    """W_hr, W_hz, W_hn, W_ir, W_iz, W_in, b_ir + b_hr, b_iz + b_hz, b_in, b_hn."""
    W_h = model.rnn.weight_hh_l0.detach().chunk(3)
    W_i = model.rnn.weight_ih_l0.detach().chunk(3)
    b_i, b_h = model.rnn.bias_ih_l0.detach().chunk(3), model.rnn.bias_hh_l0.detach().chunk(3)
    return (*W_h, *W_i, b_i[0] + b_h[0], b_i[1] + b_h[1], b_i[2], b_h[2])


def cell_from_ports(model, x, s_r, s_z, s_n, h_skip):
    """torch's GRU equations with the hidden-to-hidden products as separate inputs (ports)."""
    _, _, _, W_ir, W_iz, W_in, b_r, b_z, b_in, b_hn = blocks(model)
    r = torch.sigmoid(W_ir @ x + b_r + s_r)
    z = torch.sigmoid(W_iz @ x + b_z + s_z)
    n = torch.tanh(W_in @ x + b_in + r * (s_n + b_hn))
    return (1 - z) * n + z * h_skip


def one_sample(seed=0, d=4):
    model, x, _ = make_problem(B=1, T=1, d=d, seed=seed)
    h = 0.8 * torch.tanh(torch.randn(d, dtype=torch.float64))
    return model, x[0, 0], h


def jacobian_of_cell(model, h, x):
    return jacobian(lambda v: model.cell(v, x), h)  # (d, d)


# --- the model ------------------------------------------------------------------------------
def test_parameters_follow_torch_names_and_paper_init():
    model = GRU(6, 16, 4)
    assert {n for n, _ in model.named_parameters()} == {*RECURRENT, *READOUT}
    for W in (*model.rnn.weight_hh_l0.detach().chunk(3), *model.rnn.weight_ih_l0.detach().chunk(3)):
        small = W if W.shape[0] <= W.shape[1] else W.T  # orthonormal rows of the wide side
        torch.testing.assert_close(small @ small.T, torch.eye(small.shape[0]), atol=1e-5, rtol=0)
    for bias in (model.rnn.bias_ih_l0, model.rnn.bias_hh_l0, model.readout.bias):
        assert bias.abs().max() == 0


def test_cell_matches_torch_gru_for_any_batch_shape():
    model, x, _ = make_problem(T=5)
    hs = model.states(x)
    h_prev = torch.cat([torch.zeros_like(hs[:, :1]), hs[:, :-1]], 1)
    torch.testing.assert_close(model.cell(h_prev, x), hs)  # (B, T, d) batched over B and T
    torch.testing.assert_close(model.cell(hs[0, 0], x[0, 1]), hs[0, 1])  # unbatched (d,)


# --- the derivation, piece by piece, against autograd ----------------------------------------
@pytest.mark.parametrize("seed", range(3))
def test_port_gains_are_the_partial_derivatives_of_the_cell(seed):
    """c_p = d h' / d s_p, a diagonal, where s_p = W_p h is port p's input (skip: s = h)."""
    model, x, h = one_sample(seed)
    W_hr, W_hz, W_hn = blocks(model)[:3]
    ports = (W_hr @ h, W_hz @ h, W_hn @ h, h)
    gains = model.port_gains(h, x)  # (4, d)
    for i, name in enumerate(PORTS):

        def f(s, i=i):
            args = list(ports)
            args[i] = s
            return cell_from_ports(model, x, *args)

        expected = jacobian(f, ports[i])
        torch.testing.assert_close(torch.diag(gains[i]), expected, msg=f"port {name}")


@pytest.mark.parametrize("seed", range(3))
def test_jacobian_is_sum_over_ports(seed):
    """dh'/dh = sum_p diag(c_p) W_p with W_p = W_hr, W_hz, W_hn, I (the chain rule)."""
    model, x, h = one_sample(seed)
    W_hr, W_hz, W_hn = blocks(model)[:3]
    c = model.port_gains(h, x)
    assembled = sum(c[i, :, None] * W for i, W in enumerate((W_hr, W_hz, W_hn, torch.eye(4))))
    torch.testing.assert_close(assembled, jacobian_of_cell(model, h, x))


def rule(model, h, x, reg, e):
    """The linearized rule at one step, for one sample (T = 2: step 1 maps to step 0)."""
    hs = torch.stack([h, model.cell(h, x)])[None]  # (1, 2, d): h_1 = h, h_2 = cell(h)
    xs = torch.stack([torch.zeros_like(x), x])[None]
    inverse = model.regularized_inverse(xs, hs, reg)
    return inverse.linearized(e[None], 1)[0]


@pytest.mark.parametrize("reg", [0.1, 1.0, 10.0])
def test_rule_at_orthogonal_blocks_is_rescaled_transpose(reg):
    """At the paper's init (orthogonal blocks) A_p = W_p^T / (1 + r), so the rule is
    J^T (e / S^2) / (1 + r): BP's adjoint step with each unit divided by its squared gain."""
    torch.manual_seed(0)
    model = GRU(3, 4, 2).double()
    with torch.no_grad():  # biases move the gates away from 1/2; the blocks stay orthogonal
        for b in (model.rnn.bias_ih_l0, model.rnn.bias_hh_l0):
            b.add_(0.5 * torch.randn_like(b))
    x, h = torch.randn(3, dtype=torch.float64), 0.8 * torch.tanh(torch.randn(4, dtype=torch.float64))
    e = torch.randn(4, dtype=torch.float64)
    S = model.port_gains(h, x).abs().sum(0)
    expected = jacobian_of_cell(model, h, x).T @ (e / S**2) / (1 + reg)
    torch.testing.assert_close(rule(model, h, x, reg, e), expected)


def tanh_rnn_limit(model):
    """Freeze the gates (W_hr = W_hz = 0), open the reset gate (r = 1), close the skip (z = 0):
    the GRU becomes h' = tanh(W_in x + b_in + W_hn h + b_hn), a tanh RNN with W = W_hn."""
    with torch.no_grad():
        d = model.rnn.hidden_size
        model.rnn.weight_hh_l0[: 2 * d].zero_()
        model.rnn.bias_ih_l0[:d].fill_(40.0)  # r = sigmoid(40) = 1 - 4e-18
        model.rnn.bias_ih_l0[d : 2 * d].fill_(-40.0)  # z = 4e-18
    return model


@pytest.mark.parametrize("reg", [0.5, 5.0])
def test_rule_reduces_to_the_tanh_rnn_rule(reg):
    model, x, y = make_problem(T=6)
    tanh_rnn_limit(model)
    hs = model.states(x).detach()
    _, _, W_hn, _, _, W_in, _, _, b_in, b_hn = blocks(model)
    rnn = RNNInverse(W_hn, W_in, b_in + b_hn, "tanh", reg, x, hs)
    gru = model.regularized_inverse(x, hs, reg)
    e = torch.randn_like(hs[:, 0])
    for k in range(1, 6):
        torch.testing.assert_close(gru.linearized(e, k), rnn.linearized(e, k))


@pytest.mark.parametrize("seed", range(3))
def test_rule_inverts_the_jacobian_in_the_single_port_limit(seed):
    """reg -> 0, W_hn square invertible, gates frozen, skip closed: the rule is J^{-1}."""
    model, x, h = one_sample(seed)
    tanh_rnn_limit(model)
    e = torch.randn(4, dtype=torch.float64)
    J = jacobian_of_cell(model, h, x)
    torch.testing.assert_close(J @ rule(model, h, x, 1e-12, e), e)


def test_rule_inverts_the_jacobian_when_all_ports_share_the_identity():
    """W_hr = W_hz = W_hn = I = W_skip and positive gains: J = diag(S), the rule is e / S."""
    torch.manual_seed(0)
    model = GRU(3, 4, 2).double()
    with torch.no_grad():
        model.rnn.weight_hh_l0.copy_(torch.eye(4).repeat(3, 1))
        model.rnn.bias_hh_l0[8:].fill_(0.1)  # q = h + 0.1 > 0, so c_r > 0
    x = torch.zeros(3, dtype=torch.float64)
    h = torch.full((4,), 0.9, dtype=torch.float64)
    assert (model.port_gains(h, x) > 0).all()  # n = tanh(r q) < h, so c_z > 0 too
    e = torch.randn(4, dtype=torch.float64)
    J = jacobian_of_cell(model, h, x)
    torch.testing.assert_close(J @ rule(model, h, x, 1e-12, e), e)


# --- the TP facts ----------------------------------------------------------------------------
@pytest.mark.parametrize("update", UPDATES)
def test_single_step_direction_is_scaled_bp_gradient(update):
    model, x, y = make_problem(T=1)
    gamma = 0.37
    tp = direction(tpri.TargetProp(gamma, reg=0.5, update=update), model, x, y)
    bp = direction(tpri.Backprop(), model, x, y)
    assert_close({k: tp[k] for k in RECURRENT}, {k: gamma * bp[k] for k in RECURRENT})
    assert_close({k: tp[k] for k in READOUT}, {k: bp[k] for k in READOUT})


@pytest.mark.parametrize("update", UPDATES)
def test_direction_is_gradient_of_surrogate(update):
    """grad J, J = sum_t sum_batch 1/2 ||h_t - v_t||^2, with targets from a naive sweep."""
    model, x, y = make_problem(T=5)
    gamma, reg = 0.2, 0.7
    tp = direction(tpri.TargetProp(gamma, reg, update=update), model, x, y)
    hs = model.states(x).detach()
    leaf = hs.clone().requires_grad_()
    F.cross_entropy(model.predict(leaf), y).backward()
    h_prev = torch.cat([torch.zeros_like(hs[:, :1]), hs[:, :-1]], 1)
    c = model.port_gains(h_prev, x).detach()  # (B, T, 4, d)
    W = (*blocks(model)[:3], torch.eye(4, dtype=hs.dtype))
    A = [torch.linalg.solve(Wp.T @ Wp + reg * torch.eye(4, dtype=hs.dtype), Wp.T) for Wp in W]
    e = -gamma * leaf.grad[:, -1]
    v = [hs[:, -1] + e]
    for t in range(4, 0, -1):
        u = e / c[:, t].abs().sum(1).clamp(min=tpri.algorithm.gru.MIN_GAIN) ** 2
        e = sum((c[:, t, p] * u) @ A[p].T for p in range(4))
        v.insert(0, hs[:, t - 1] + e)
    model.zero_grad()
    states = model.states(x) if update == "graph" else model.cell(h_prev, x)
    (0.5 * (states - torch.stack(v, 1)).pow(2).sum()).backward()
    assert_close(
        {k: tp[k] for k in RECURRENT}, {k: p.grad for k, p in model.named_parameters() if k in RECURRENT}
    )


def test_direction_is_a_descent_direction_on_random_instances():
    """Positive inner product with the BP gradient on 20 random instances (T = 8; at the
    time of writing: 20 of 20, median cosine 0.93)."""
    positive = 0
    for seed in range(20):
        model, x, y = make_problem(T=8, d=6, seed=seed)
        tp = direction(tpri.TargetProp(0.1, reg=1.0), model, x, y)
        bp = direction(tpri.Backprop(), model, x, y)
        positive += sum((tp[k] * bp[k]).sum() for k in RECURRENT) > 0
    assert positive >= 18


def test_infinite_reg_gives_scaled_bp_gradient_in_graph_mode():
    model, x, y = make_problem(T=7)
    gamma = 0.1
    method = tpri.TargetProp(gamma, reg=1e12)
    tp = direction(method, model, x, y)
    bp = direction(tpri.Backprop(), model, x, y)
    assert method.displacements[:, :-1].abs().max() < 1e-9  # only the top target moves
    assert_close({k: tp[k] for k in RECURRENT}, {k: gamma * bp[k] for k in RECURRENT}, rtol=1e-6, atol=1e-12)


@pytest.mark.parametrize("targets", ["difference", "inverse"])
def test_rules_without_closed_form_are_refused(targets):
    model, x, y = make_problem(T=3)
    with pytest.raises(ValueError, match=r"targets=.*accepted: \['linearized'\]"):
        direction(tpri.TargetProp(0.1, 1.0, targets=targets), model, x, y)


def test_factorisation_failure_raises_diverged():
    model, x, y = make_problem(T=4)
    with torch.no_grad():
        model.rnn.weight_hh_l0[8:].zero_()  # singular W_hn, no regularization
    with pytest.raises(tpri.Diverged):
        direction(tpri.TargetProp(0.1, reg=0.0), model, x, y)
    with torch.no_grad():
        model.rnn.weight_hh_l0.fill_(float("nan"))
    with pytest.raises(tpri.Diverged):
        direction(tpri.TargetProp(0.1, reg=1.0), model, x, y)


# --- learning --------------------------------------------------------------------------------
@pytest.mark.parametrize("update", UPDATES)
def test_tp_learns_temporal_order(update):
    """Temporal order, T = 10, 4 classes (chance 25%), the paper's GRU reg = 1: at the time
    of writing 100% test accuracy after 300 iterations in both modes."""
    task = tpri.data.make_task("temporal_order", length=10)
    torch.manual_seed(0)
    model = GRU(task.input_size, 32, task.output_size)
    method = tpri.TargetProp(lr_target=0.1, reg=1.0, update=update)
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    gen = torch.Generator().manual_seed(0)
    for _ in range(300):
        x, y = task.sample(20, gen)
        opt.zero_grad()
        method.backward(model, x, y, task.loss)
        opt.step()
    x, y = task.test_set()
    with torch.no_grad():
        assert task.accuracy(model(x), y) > 0.9
