"""Numerical faults end a job as `diverged` with a reason naming the cause; bugs as `failed`."""

import json

import pytest
import torch
from helpers import TINY, compose_config, read_metrics

from tpri.run import loop, run
from tpri.run.job import Job


def run_tampered(monkeypatch, tmp_path, tamper, *overrides):
    """Run a tiny job whose freshly built Job is first passed to `tamper`."""

    class Tampered(Job):
        def __init__(self, cfg):
            super().__init__(cfg)
            tamper(self)

    monkeypatch.setattr(loop, "Job", Tampered)
    return run(compose_config([*TINY, "max_iter=20", "eval_every=10", *overrides]), tmp_path)


def test_nan_weights_end_the_job_as_diverged_naming_the_parameter(monkeypatch, tmp_path):
    def nan_w(job):
        with torch.no_grad():
            job.model.rnn.weight_hh_l0.fill_(float("nan"))

    summary = run_tampered(monkeypatch, tmp_path, nan_w)
    assert summary["status"] == "diverged"
    assert "rnn.weight_hh_l0" in summary["reason"] and "lr=0.1" in summary["reason"]
    assert json.loads((tmp_path / "summary.json").read_text())["status"] == "diverged"


def test_singular_w_without_regularization_ends_as_diverged(monkeypatch, tmp_path):
    def zero_w(job):
        with torch.no_grad():
            job.model.rnn.weight_hh_l0.zero_()

    summary = run_tampered(monkeypatch, tmp_path, zero_w, "reg=0")
    assert summary["status"] == "diverged"
    assert "Cholesky" in summary["reason"] and "the update from iteration 0:" in summary["reason"]
    assert summary["iteration"] == 0  # the same iteration as the reason's, one number


def test_exploding_loss_triggers_the_papers_divergence_rule(tmp_path):
    cfg = compose_config([*TINY, "optimizer=sgd", "lr=50", "max_iter=200", "eval_every=10"])
    summary = run(cfg, tmp_path)
    assert summary["status"] == "diverged"
    assert any(rule in summary["reason"] for rule in ("initial", "non-finite", "diverge_weight_norm"))
    assert "lr=50" in summary["reason"] and "lr_target" not in summary["reason"]  # BP: lr only


def test_a_finite_explosion_of_the_weights_is_diverged_by_the_weight_norm_rule(tmp_path):
    # lr_target=1e6: one TP step takes |W| from ~1 to ~1e4, finite, and the run stays at chance
    cfg = compose_config([*TINY, "lr_target=1e6", "max_iter=50", "eval_every=10"])
    summary = run(cfg, tmp_path)
    assert summary["status"] == "diverged"
    assert "weight-norm rule (tpri's, not the paper's)" in summary["reason"]
    assert "diverge_weight_norm=1000.0 at iteration 1" in summary["reason"]
    assert "lr_target=1000000.0" in summary["reason"]
    relaxed = run({**cfg, "diverge_weight_norm": 1e12}, tmp_path / "relaxed")
    assert relaxed["iteration"] > 1  # the key moves the threshold


def test_an_unexpected_error_is_recorded_as_failed_and_raised(monkeypatch, tmp_path):
    calls = []

    def broken(*args):
        calls.append(1)
        if len(calls) == 5:
            raise RuntimeError("a bug")
        return torch.tensor(1.0)

    def break_direction(job):
        job.direction.backward = broken

    with pytest.raises(RuntimeError, match="a bug"):
        run_tampered(monkeypatch, tmp_path, break_direction)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["status"] == "failed" and "a bug" in summary["reason"]
    assert summary["iteration"] == 4


def bp_lr5(tmp_path, *overrides):
    """BP at lr=5 on the tiny task: the train loss passes 2x its initial value by iteration 10
    and stays finite (measured: 1.47 -> 40.8, 34.3, 22.9 at iterations 10, 20, 30); weight-norm
    rule off."""
    cfg = compose_config(
        [
            *TINY,
            "optimizer=sgd",
            "lr=5",
            "max_iter=60",
            "eval_every=10",
            "diverge_weight_norm=null",
            *overrides,
        ]
    )
    return run(cfg, tmp_path)


def test_the_loss_rule_is_checked_at_every_evaluation_by_default(tmp_path):
    summary = bp_lr5(tmp_path)
    assert summary["status"] == "diverged" and summary["iteration"] == 10
    assert "loss rule (the paper's" in summary["reason"] and "at every evaluation" in summary["reason"]


def test_the_loss_rule_on_the_papers_schedule_waits_for_its_check(tmp_path):
    summary = bp_lr5(tmp_path, "diverge_check_every=30")
    assert summary["status"] == "diverged" and summary["iteration"] == 30  # not at 10 or 20
    assert "every 30 iterations and at the end (diverge_check_every=30)" in summary["reason"]
    rows = read_metrics(tmp_path / "metrics.csv")
    assert [int(r["iteration"]) for r in rows] == [0, 10, 20, 30]


def test_a_check_between_evaluations_reads_the_latest_evaluation(tmp_path):
    summary = bp_lr5(tmp_path, "diverge_check_every=25")
    assert summary["status"] == "diverged" and summary["iteration"] == 25
    assert "the train loss of the evaluation at iteration 20" in summary["reason"]


def test_the_loss_rule_is_checked_at_the_end_of_a_run_shorter_than_its_schedule(tmp_path):
    summary = bp_lr5(tmp_path, "diverge_check_every=1000")
    assert summary["status"] == "diverged" and summary["iteration"] == 60


def test_the_weight_norm_rule_is_off_when_null(tmp_path):
    cfg = compose_config([*TINY, "lr_target=1e6", "max_iter=20", "eval_every=10", "diverge_weight_norm=null"])
    summary = run(cfg, tmp_path)
    assert summary["status"] == "completed" and summary["iteration"] == 20
