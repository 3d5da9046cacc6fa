"""The library API refuses misuse with one clear exception naming what is wrong, before any
gradient is touched."""

import math

import pytest
import torch
from torch import nn

import tpri
from tpri.data import make_task

DIRECTIONS = {
    "tp": lambda: tpri.TargetProp(lr_target=1e-2, reg=1.0),
    "tp_local": lambda: tpri.TargetProp(lr_target=1e-2, reg=1.0, update="local"),
    "bp": tpri.Backprop,
}


@pytest.fixture
def setup():
    task = make_task("temporal_order", length=8, test_size=20, eval_size=20)
    model = tpri.RNN(task.input_size, 6, task.output_size)
    x, y = task.sample(4, torch.Generator().manual_seed(0))
    return task, model, x, y


def _untouched(model) -> bool:
    return all(p.grad is None for p in model.parameters())


@pytest.mark.parametrize("name", DIRECTIONS)
@pytest.mark.parametrize(
    "batch, message",
    [
        (lambda x, y: (x[:0], y[:0]), "an empty batch"),
        (lambda x, y: (x[:, :0], y), "no time steps"),
        (lambda x, y: (x[..., :-1], y), r"reads floats of shape \(batch, steps, 6\)"),
        (lambda x, y: (x[0], y), r"reads floats of shape|expected \(batch, steps"),
        (lambda x, y: (x, y[:-1]), "do not match the 4 sequences"),
        (lambda x, y: (x.long(), y), "reads floats"),
    ],
)
def test_a_bad_batch_is_refused_naming_the_shape(setup, name, batch, message):
    task, model, x, y = setup
    bad_x, bad_y = batch(x, y)
    with pytest.raises(ValueError, match=message):
        DIRECTIONS[name]().backward(model, bad_x, bad_y, task.loss)
    assert _untouched(model)


@pytest.mark.parametrize("name", DIRECTIONS)
@pytest.mark.parametrize("value", [math.inf, -math.inf, math.nan])
def test_non_finite_inputs_never_give_gradients(setup, name, value):
    task, model, x, y = setup
    x = x.clone()
    x[1, 2, 0] = value
    with pytest.raises((ValueError, tpri.Diverged), match="non-finite"):
        DIRECTIONS[name]().backward(model, x, y, task.loss)
    assert _untouched(model)


@pytest.mark.parametrize("name", DIRECTIONS)
def test_tensors_are_required(setup, name):
    task, model, x, y = setup
    with pytest.raises(TypeError, match="inputs must be a torch.Tensor, got list"):
        DIRECTIONS[name]().backward(model, x.tolist(), y, task.loss)


class Foreign(nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(6, 4, batch_first=True)
        self.out = nn.Linear(4, 4)

    def forward(self, x):
        return self.out(self.lstm(x)[0][:, -1])


def test_a_foreign_model_is_refused_saying_what_it_must_provide(setup):
    task, _, x, y = setup
    model = Foreign()
    with pytest.raises(
        TypeError, match=r"Foreign lacks \['states', 'predict', 'per_step_loss', 'regularized_inverse'\]"
    ):
        tpri.TargetProp(lr_target=1e-2, reg=1.0).backward(model, x, y, task.loss)
    assert all(p.grad is None for p in model.parameters())
    # BP trains any differentiable model
    loss = tpri.Backprop().backward(model, x, y, task.loss)
    assert torch.isfinite(loss) and all(torch.isfinite(p.grad).all() for p in model.parameters())


@pytest.mark.parametrize("key", ["lr_target", "reg"])
@pytest.mark.parametrize("value", [math.inf, -math.inf, math.nan, -1.0, "1", True])
def test_hyperparameters_that_are_not_finite_numbers_are_refused_at_construction(key, value):
    options = {"lr_target": 1e-2, "reg": 1.0, key: value}
    with pytest.raises(ValueError, match=rf"{key} must be a finite number >= 0"):
        tpri.TargetProp(**options)


def test_dtp_refuses_non_finite_hyperparameters_and_bad_batches(setup):
    task, model, x, y = setup
    with pytest.raises(ValueError, match="lr_target must be a finite number"):
        tpri.DTP(lr_target=math.inf, lr_reverse=1e-3, noise=0.1)
    with pytest.raises(ValueError, match="an empty batch"):
        tpri.DTP(lr_target=1e-2, lr_reverse=1e-3, noise=0.1).backward(model, x[:0], y[:0], task.loss)


def test_text_model_inputs_are_token_ids_in_its_vocabulary():
    model = tpri.TextRNN(10, 8, 10, embedding_dim=4)
    tp = tpri.TargetProp(lr_target=1e-2, reg=1.0)
    y = torch.zeros(2, 3, dtype=torch.long)
    with pytest.raises(ValueError, match=r"token ids outside \[0, 10\)"):
        tp.backward(model, torch.full((2, 3), 10), y, lambda p, t: p.sum())
    with pytest.raises(ValueError, match="reads token ids"):
        tp.backward(model, torch.zeros(2, 3, 4), y, lambda p, t: p.sum())


def test_a_valid_batch_still_trains(setup):
    task, model, x, y = setup
    loss = tpri.TargetProp(lr_target=1e-2, reg=1.0).backward(model, x, y, task.loss)
    assert torch.isfinite(loss) and all(torch.isfinite(p.grad).all() for p in model.parameters())
