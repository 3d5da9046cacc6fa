"""The CUDA path (skipped without a CUDA device): directions equal the CPU ones in float64,
with the sweep eager, recorded and replayed as a CUDA graph; batches drawn on the device.
scripts/gpu_check.py runs the same checks on more models and times the methods."""

import copy

import pytest
import torch
from problems import direction
from problems import rnn_problem as make_problem

import tpri
from tpri.algorithm.tp import TARGETS, UPDATES

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def relative_errors(a: dict, b: dict) -> dict:
    return {n: ((a[n].cpu() - b[n]).norm() / b[n].norm()).item() for n in b}


@pytest.mark.parametrize("targets", TARGETS)
@pytest.mark.parametrize("update", UPDATES)
@pytest.mark.parametrize("activation", ["tanh", "identity"])
def test_cuda_directions_equal_cpu_directions(targets, update, activation):
    model, x, y = make_problem(T=9, activation=activation)
    reference = tpri.TargetProp(0.3, 0.5, targets, update)
    expected = direction(reference, model, x, y)
    gpu_model, method = copy.deepcopy(model).cuda(), tpri.TargetProp(0.3, 0.5, targets, update)
    for _ in range(3):  # eager sweep, recorded graph, replayed graph
        got = direction(method, gpu_model, x.cuda(), y.cuda())
        assert max(relative_errors(got, expected).values()) < 1e-10
        E = method.displacements.cpu()
        assert ((E - reference.displacements).norm() / reference.displacements.norm()) < 1e-10


def test_cuda_bp_equals_cpu_bp():
    model, x, y = make_problem(T=9)
    expected = direction(tpri.Backprop(), model, x, y)
    got = direction(tpri.Backprop(), copy.deepcopy(model).cuda(), x.cuda(), y.cuda())
    assert max(relative_errors(got, expected).values()) < 1e-10


def test_linearized_sweep_is_captured_after_two_calls_with_one_shape():
    model, x, y = make_problem(T=9)
    model, x, y = model.cuda(), x.cuda(), y.cuda()
    method = tpri.TargetProp(0.3, 0.5)
    direction(method, model, x, y)
    assert method._capture.graph is None  # first sight of the shape: eager
    direction(method, model, x, y)
    assert method._capture.graph is not None
    assert method.displacements.data_ptr() == method._capture.graph.E.data_ptr()


@pytest.mark.parametrize("name", ["temporal_order", "adding"])
def test_sample_with_a_cuda_generator_returns_device_tensors(name):
    task = tpri.data.make_task(name, length=40)
    x, y = task.sample(8, torch.Generator(device="cuda").manual_seed(0))
    assert x.is_cuda and y.is_cuda and x.shape == (8, 40, task.input_size)
    again = task.sample(8, torch.Generator(device="cuda").manual_seed(0))
    torch.testing.assert_close(again[0], x)


def test_tensor_task_samples_onto_the_generator_device():
    x_train, y_train = torch.randn(50, 7, 3), torch.randint(4, (50,))
    task = tpri.data.TensorTask("t", x_train, y_train, x_train[:5], y_train[:5], output_size=4)
    x, y = task.sample(6, torch.Generator(device="cuda").manual_seed(0))
    assert x.is_cuda and y.is_cuda and x.shape == (6, 7, 3)
