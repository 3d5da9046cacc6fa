"""Small float64 problems and gradient helpers shared by the algorithm tests."""

import torch
import torch.nn.functional as F

import tpri


def rnn_problem(T=6, B=5, n=3, d=4, classes=3, activation="tanh", seed=0):
    """A perturbed RNN (non-zero biases, non-orthogonal W exercise every term) and a batch
    kept away from tanh's saturation."""
    torch.manual_seed(seed)
    model = tpri.RNN(n, d, classes, activation=activation).double()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    x = 0.5 * torch.randn(B, T, n, dtype=torch.float64)
    y = torch.randint(classes, (B,))
    return model, x, y


def direction(method, model, x, y, loss_fn=F.cross_entropy):
    """The direction `method` puts in `.grad`, per parameter name (frozen ones left out)."""
    model.zero_grad()
    method.backward(model, x, y, loss_fn)
    return {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}


def assert_close(a, b, **tol):
    """assert_close on every named tensor of `a`, naming the tensor on failure."""
    for name in a:
        torch.testing.assert_close(a[name], b[name], msg=lambda m, name=name: f"{name}: {m}", **tol)
