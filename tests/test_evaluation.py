"""Evaluation in chunks: the same loss and accuracy as one forward pass over the whole set,
NaN kept, and only one chunk's predictions held (the memory estimate counts one chunk)."""

import pytest
import torch
from helpers import TINY, compose_config

import tpri
import tpri.data.base
from tpri.configs.resources import estimate_memory
from tpri.data.base import TensorTask, eval_chunk
from tpri.run import loop, run
from tpri.run.divergence import DivergenceRules
from tpri.run.job import Job, evaluate_set

N, T = 37, 6  # sequences, steps: chunks of 10 leave a last chunk of 7


def _problem(objective: str):
    """A small model and a task of N sequences of the objective, with random data."""
    torch.manual_seed(0)
    if objective == "language_model":
        vocabulary = 30
        x = torch.randint(vocabulary, (N, T))
        y = torch.randint(vocabulary, (N, T))
        model = tpri.TextRNN(vocabulary, 8, vocabulary, embedding_dim=5)
        task = TensorTask("text", x, y, x, y, vocabulary, objective, n_eval=N, input_size=vocabulary)
    else:
        x = torch.randn(N, T, 3)
        classes = 1 if objective == "regression" else 4
        y = torch.randn(N) * 0.05 if objective == "regression" else torch.randint(classes, (N,))
        model = tpri.RNN(3, 8, classes)
        task = TensorTask("numbers", x, y, x, y, classes, objective, n_eval=N)
    return model.eval(), task, x, y


@pytest.mark.parametrize("objective", ["classification", "regression", "language_model"])
def test_chunks_give_the_loss_and_accuracy_of_one_pass(objective):
    model, task, x, y = _problem(objective)
    with torch.no_grad():
        pred = model(x)
        whole = task.loss(pred, y).item(), task.accuracy(pred, y)
    for chunk in (1, 10, 36):
        loss, accuracy = evaluate_set(model, task, x, y, chunk)
        assert loss == pytest.approx(whole[0], rel=1e-6)
        assert accuracy == pytest.approx(whole[1], rel=1e-6)
    # one chunk holding the whole set: exactly the numbers of one pass
    assert evaluate_set(model, task, x, y, N) == whole
    assert evaluate_set(model, task, x, y, 1000) == whole


def test_chunks_of_unequal_sizes_are_weighted_by_their_sequences():
    """A mean of the chunks' means would differ: the last chunk (7 sequences) is made an outlier."""
    model, task, x, y = _problem("regression")
    y = y.clone()
    y[30:] += 5.0  # the last chunk of 10: sequences 30..36
    with torch.no_grad():
        pred = model(x)
        whole = task.loss(pred, y).item()
        means = [task.loss(model(xb), yb).item() for xb, yb in zip(x.split(10), y.split(10))]
    assert abs(sum(means) / len(means) - whole) > 0.1 * whole  # the plain mean is far off
    assert evaluate_set(model, task, x, y, 10)[0] == pytest.approx(whole, rel=1e-6)


def test_a_nan_in_one_chunk_makes_the_loss_nan():
    model, task, x, y = _problem("classification")
    x = x.clone()
    x[23, 2, 0] = float("nan")  # one sequence of the third chunk of 10
    loss, accuracy = evaluate_set(model, task, x, y, 10)
    assert loss != loss  # NaN
    finite, _ = evaluate_set(model, task, x[:20], y[:20], 10)
    assert finite == finite  # the other chunks alone are finite


def test_a_job_evaluates_in_chunks_and_a_nan_sequence_ends_it_as_diverged(monkeypatch, tmp_path):
    """Chunks of 64 over sets of 200 sequences: the numbers of one chunk of 200; a NaN input in
    one sequence of the train sample makes the train loss NaN, which the loss rule sees."""
    cfg = compose_config([*TINY, "max_iter=20", "eval_every=10"])
    whole = Job(cfg).evaluate()
    monkeypatch.setattr(tpri.data.base, "EVAL_CHUNK", 64)
    assert eval_chunk(2, 20, False) == 64
    chunked = Job(cfg).evaluate()
    assert chunked.keys() == whole.keys()
    for key, value in whole.items():
        assert chunked[key] == pytest.approx(value, rel=1e-6), key

    def nan_sequence(job):
        x, y = job.eval_sets["train"]
        x = x.clone()
        x[150] = float("nan")
        job.eval_sets["train"] = (x, y)

    class Tampered(Job):
        def __init__(self, cfg):
            super().__init__(cfg)
            nan_sequence(self)

    row = Tampered(cfg).evaluate()
    assert row["train_loss"] != row["train_loss"] and row["test_loss"] == pytest.approx(whole["test_loss"])
    rows = [{**whole, "iteration": 0}, {**row, "iteration": 10}]
    assert "train loss" in DivergenceRules().loss_reason(rows, 10)
    monkeypatch.setattr(loop, "Job", Tampered)
    summary = run(cfg, tmp_path)
    assert summary["status"] == "diverged" and summary["reason"].startswith("loss rule")


def test_a_chunk_holds_at_most_eval_bytes_of_predictions_and_at_least_one_sequence():
    assert eval_chunk(10, 784, False) == tpri.data.base.EVAL_CHUNK  # classification: small
    per_sequence = 4 * 10_000 * 64  # PTB: 10,000 words at each of 64 steps, float32
    chunk = eval_chunk(10_000, 64, True)
    assert chunk * per_sequence <= tpri.data.base.EVAL_BYTES < (chunk + 1) * per_sequence
    assert eval_chunk(10**9, 64, True) == 1


def test_the_evaluation_estimate_does_not_grow_with_the_test_set_beyond_one_chunk():
    """The PTB paper job with its 3,481 test windows and with 39,935: the same evaluation part."""
    paper = estimate_memory(compose_config(["experiment=ptb"]))
    more = estimate_memory(compose_config(["experiment=ptb", "dataset.n_test_tokens=40000"]))
    assert more["evaluation"] == paper["evaluation"] < paper["training batch"]
    assert more["dataset"] > paper["dataset"]  # the test windows themselves are held
