"""TP and BP learn small seeded tasks well above chance within a few seconds."""

import pytest
import torch

import tpri


def train(task, method, make_opt, hidden=32, iters=600, seed=0, batch=20):
    torch.manual_seed(seed)
    model = tpri.RNN(task.input_size, hidden, task.output_size)
    opt = make_opt(model.parameters())
    gen = torch.Generator().manual_seed(seed)
    for _ in range(iters):
        x, y = task.sample(batch, gen)
        opt.zero_grad()
        method.backward(model, x, y, task.loss)
        opt.step()
    x, y = task.test_set()
    with torch.no_grad():
        return task.accuracy(model(x), y)


def sgd(lr, momentum=0.0):
    return lambda params: torch.optim.SGD(params, lr=lr, momentum=momentum, nesterov=momentum > 0)


@pytest.mark.parametrize("targets", ["linearized", "difference"])
def test_tp_learns_temporal_order(targets):
    """The paper's temporal-order hyperparameters (lr 0.1, lr_target 1e-2, reg 10), T = 20."""
    task = tpri.data.make_task("temporal_order", length=20)  # 4 classes: chance is 25%
    method = tpri.TargetProp(lr_target=1e-2, reg=10.0, targets=targets)
    assert train(task, method, sgd(0.1)) > 0.9


def test_tp_local_update_learns_short_temporal_order():
    task = tpri.data.make_task("temporal_order", length=10)
    method = tpri.TargetProp(lr_target=1e-2, reg=10.0, update="local")
    assert train(task, method, sgd(0.1)) > 0.85


def test_tp_with_adam_learns_temporal_order():
    task = tpri.data.make_task("temporal_order", length=20)
    method = tpri.TargetProp(lr_target=1e-2, reg=10.0)
    assert train(task, method, lambda p: torch.optim.Adam(p, lr=3e-3)) > 0.8


def test_bp_learns_temporal_order():
    task = tpri.data.make_task("temporal_order", length=20)
    assert train(task, tpri.Backprop(), lambda p: torch.optim.Adam(p, lr=1e-2)) > 0.9


def test_bp_learns_adding():
    task = tpri.data.make_task("adding", length=10)  # predicting the mean scores ~15%
    assert train(task, tpri.Backprop(), sgd(1e-2, momentum=0.9)) > 0.5


def best_accuracy(task, method, make_opt, hidden, iters, every=100, seed=0, batch=20):
    """The best test accuracy over evaluations every `every` iterations (TP at this step
    size spikes now and then: the README's default run falls back to chance for a while)."""
    torch.manual_seed(seed)
    model = tpri.RNN(task.input_size, hidden, task.output_size)
    opt, gen, best = make_opt(model.parameters()), torch.Generator().manual_seed(seed), 0.0
    x_test, y_test = task.test_set()
    for it in range(1, iters + 1):
        x, y = task.sample(batch, gen)
        opt.zero_grad()
        method.backward(model, x, y, task.loss)
        opt.step()
        if it % every == 0:
            with torch.no_grad():
                best = max(best, task.accuracy(model(x_test), y_test))
    return best


@pytest.mark.slow
def test_papers_temporal_order_60_tp_solves_it_where_bp_stays_at_chance():
    """The default run: TP (lr 0.1, lr_target 1e-2, reg 10, d 100) vs BP (SGD, Nesterov 0.9,
    lr 1e-5), T = 60, 1000 iterations: TP passes 95% test accuracy, BP never leaves chance."""
    task = tpri.data.make_task("temporal_order", length=60)
    tp = best_accuracy(task, tpri.TargetProp(1e-2, 10.0), sgd(0.1), hidden=100, iters=1000)
    bp = best_accuracy(task, tpri.Backprop(), sgd(1e-5, momentum=0.9), hidden=100, iters=1000)
    assert tp > 0.95
    assert bp < 0.35


def test_a_job_flushes_float32_denormals_to_zero_and_restores_the_flag(tmp_path, monkeypatch):
    """TP's targets and BP's adjoints shrink step by step over long sequences; x86 computes on
    float32 denormals (< 1.2e-38) 5-10x slower (TP at T=120, d=256, B=128: 295 ms an iteration
    against 127 ms flushed), so a job counts them as 0 while it trains, and gives the process
    its flag back (the CPU flag also flushes Python's floats: lr=1e-320 must stay 1e-320)."""
    import torch
    from helpers import TINY, compose_config

    from tpri.run import Job, run

    def flushed() -> bool:
        return (torch.tensor([1e-39]) * 1.0).item() == 0.0

    seen = []
    evaluate = Job.evaluate
    monkeypatch.setattr(Job, "evaluate", lambda self: seen.append(flushed()) or evaluate(self))
    torch.set_flush_denormal(False)
    run(compose_config([*TINY, "max_iter=2", "eval_every=1"]), tmp_path / "off")
    assert seen and all(seen) and not flushed() and 1e-320 > 0
    torch.set_flush_denormal(True)  # a process that flushes already keeps flushing
    try:
        run(compose_config([*TINY, "max_iter=2", "eval_every=1"]), tmp_path / "on")
        assert flushed()
    finally:
        torch.set_flush_denormal(False)
