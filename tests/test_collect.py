"""Collecting job dirs into the results table, and the summaries over it."""

import json
import os
import socket
import warnings

import numpy as np
import pandas as pd
import pytest
from fakeruns import curve, job_config, write_job, write_multirun

from tpri.analysis.collect import (
    DataError,
    UsageError,
    aggregate_seeds,
    area_under_curve,
    best_configs,
    collect,
    load,
    method_label,
    select,
    sequence_length,
    summarize,
    swept_keys,
    write_results,
)


@pytest.fixture
def sweep(tmp_path):
    """A multirun with a completed, a diverged, a half-written and an empty job dir."""
    write_multirun(
        tmp_path,
        [
            dict(overrides={"lr": 0.5, "reg": 10.0}),
            dict(optimizer="sgd", overrides={"lr": 1e-3}, status="diverged", metrics=curve(diverge_at=400)),
            dict(status=None),
        ],
    )
    metrics = tmp_path / "2" / "metrics.csv"
    metrics.write_text(metrics.read_text() + "1200,12.0,0.1")  # a row cut while written
    (tmp_path / "3" / ".hydra").mkdir(parents=True)
    return tmp_path


def test_collect_keeps_finished_jobs_and_warns_once(sweep):
    with pytest.warns(UserWarning) as record:
        df = collect(sweep)
    assert len(record) == 1
    message = str(record[0].message)
    assert str(sweep / "2") in message and str(sweep / "3") in message
    assert str(sweep / "0") not in message

    jobs = df.drop_duplicates("job_dir").set_index("job_dir")
    assert list(jobs.index) == ["0", "1"]
    assert list(jobs["status"]) == ["completed", "diverged"]
    assert list(jobs["method"]) == ["TP", "BP (SGD, Nesterov 0.9)"]
    assert list(jobs["stop_iteration"]) == [1000, 400]
    assert list(jobs["optimizer"]) == ["tp", "sgd"]
    assert jobs.loc["0", "lr"] == 0.5 and jobs.loc["0", "reg"] == 10.0
    assert jobs.loc["0", "optimizer.reg"] == 10.0  # ${reg} resolved
    assert jobs.loc["1", "optimizer.lr"] == 1e-3
    assert jobs.loc["0", "dataset.length"] == 60 and jobs.loc["0", "model.hidden"] == 100
    assert jobs.loc["1", "reason"] == "loss is nan"
    assert {"lr", "optimizer.name"} <= set(swept_keys(df))

    diverged = df[df["job_dir"] == "1"]
    assert list(diverged["iteration"]) == [0, 200, 400]
    assert np.isnan(diverged["train_loss"].iloc[-1])
    assert len(df[df["job_dir"] == "0"]) == 6


def test_collect_skips_unparsable_and_running_summaries(tmp_path):
    write_job(tmp_path / "a")
    write_job(tmp_path / "b")
    write_job(tmp_path / "c")
    (tmp_path / "b" / "summary.json").write_text('{"status": "compl')
    (tmp_path / "c" / "summary.json").write_text(json.dumps({"status": "running"}))
    (tmp_path / "c" / "run.lock").write_text(f"{os.getpid()} {socket.gethostname()}\n")  # alive
    with pytest.warns(UserWarning, match="unparsable summary.json") as record:
        df = collect(tmp_path)
    assert "c (still running)" in str(record[0].message)
    assert list(df["job_dir"].unique()) == ["a"]
    (tmp_path / "c" / "run.lock").unlink()  # a running job holds its lock: this one was killed
    with pytest.warns(UserWarning, match=r"c \(interrupted \(process gone\)\)"):
        collect(tmp_path)


def test_collect_skips_interrupted_and_keeps_failed_and_diverged(tmp_path):
    write_job(tmp_path / "a", status="interrupted")
    write_job(tmp_path / "b", status="failed")
    write_job(tmp_path / "c", status="diverged", metrics=curve(diverge_at=200))
    with pytest.warns(UserWarning, match="interrupted"):
        df = collect(tmp_path)
    jobs = df.drop_duplicates("job_dir").set_index("job_dir")["status"]
    assert jobs.to_dict() == {"b": "failed", "c": "diverged"}
    assert "provenance" not in df  # unknown summary keys ignored


def test_collect_walks_nested_multiruns_without_warning(tmp_path):
    write_multirun(tmp_path / "day1" / "sweep", [dict(overrides={"seed": s}) for s in range(2)])
    write_multirun(tmp_path / "day2", [dict(overrides={"seed": s}) for s in range(11)])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        df = collect(tmp_path)
    jobs = list(df["job_dir"].unique())
    assert jobs[:2] == ["day1/sweep/0", "day1/sweep/1"]
    assert jobs[-2:] == ["day2/9", "day2/10"]  # natural order


def test_collect_of_a_failed_job_without_metrics(tmp_path):
    job = write_job(tmp_path, status="failed")
    (job / "metrics.csv").unlink()
    df = collect(tmp_path)
    assert len(df) == 1 and df["status"].iloc[0] == "failed" and df["job_dir"].iloc[0] == "."


def test_unresolvable_interpolations_fall_back_to_raw_values(tmp_path):
    job = write_job(
        tmp_path, overrides={"device": "${oc.env:TPRI_SURELY_UNSET_VAR}", "model.name": "${now:%Y}"}
    )
    df = collect(job)
    assert df["device"].iloc[0] == "${oc.env:TPRI_SURELY_UNSET_VAR}"
    assert df["optimizer.lr"].iloc[0] == 0.1  # the rest still resolved


def test_method_labels():
    def label(optimizer, **overrides):
        flat = pd.json_normalize(job_config(optimizer, overrides=overrides)).iloc[0].to_dict()
        return method_label(flat)

    assert label("tp") == "TP"
    assert label("sgd") == "BP (SGD, Nesterov 0.9)"
    assert label("sgd", **{"optimizer.momentum": 0.0}) == "BP (SGD)"
    assert (
        label("sgd", **{"optimizer.nesterov": False, "optimizer.momentum": 0.5}) == "BP (SGD, momentum 0.5)"
    )
    assert label("adam") == "BP (Adam)"
    assert label("dtp") == "DTP-PI (Nesterov 0.9)"  # the authors' DTP on the synthetic tasks
    assert label("dtp", **{"optimizer.momentum": 0.0, "optimizer.nesterov": False}) == "DTP-PI"
    assert label("dtp", **{"optimizer.variant": "separate"}) == "DTP-PI (separate, Nesterov 0.9)"
    assert label("tp", **{"optimizer.momentum": 0.9, "optimizer.nesterov": True}) == "TP (Nesterov 0.9)"
    assert (
        label("tp", **{"optimizer.targets": "difference", "optimizer.update": "local"})
        == "TP (difference, local)"
    )
    assert label("tp", **{"optimizer.step": "adam"}) == "TP (Adam)"


def test_area_under_curve_by_hand():
    df = pd.DataFrame(
        {"job_dir": ["a"] * 3 + ["b"], "iteration": [0, 100, 300, 0], "train_loss": [1.0, 3.0, 1.0, 0.7]}
    )
    auc = area_under_curve(df, "train_loss")
    # a: (100 * (1 + 3) / 2 + 200 * (3 + 1) / 2) / 300 = 2; b: a single point, its value
    assert auc["a"] == pytest.approx(2.0)
    assert auc["b"] == pytest.approx(0.7)


def test_summarize_and_aggregate_over_seeds(tmp_path):
    finals = {0: 0.2, 1: 0.4, 2: 0.6}
    write_multirun(
        tmp_path,
        [dict(overrides={"seed": s, "lr": 0.1}, metrics=curve(loss=(1.0, f))) for s, f in finals.items()]
        + [dict(overrides={"seed": 0, "lr": 1.0}, metrics=curve(loss=(1.0, 0.0)))],
    )
    jobs = summarize(collect(tmp_path))
    assert len(jobs) == 4
    assert list(jobs["final_train_loss"]) == pytest.approx([0.2, 0.4, 0.6, 0.0])
    assert list(jobs["best_test_accuracy"]) == pytest.approx([0.9] * 4)
    # linear curves: the area is the mean of the two ends
    assert list(jobs["auc_train_loss"]) == pytest.approx([0.6, 0.7, 0.8, 0.5])
    assert set(jobs["last_iteration"]) == {1000}

    stats = aggregate_seeds(jobs, ["final_train_loss"]).set_index("lr")
    assert stats.loc[0.1, "final_train_loss_mean"] == pytest.approx(0.4)
    assert stats.loc[0.1, "final_train_loss_std"] == pytest.approx(0.2)
    assert stats.loc[0.1, "final_train_loss_count"] == 3
    assert stats.loc[1.0, "final_train_loss_count"] == 1


def test_best_configs_ranks_diverged_configurations_last(tmp_path):
    write_multirun(
        tmp_path,
        [
            dict(overrides={"lr": 0.1, "seed": 0}, metrics=curve(loss=(1.0, 0.5))),
            dict(overrides={"lr": 0.1, "seed": 1}, metrics=curve(loss=(1.0, 0.5))),
            dict(overrides={"lr": 1.0, "seed": 0}, metrics=curve(loss=(1.0, 0.1))),
            dict(overrides={"lr": 1.0, "seed": 1}, metrics=curve(loss=(1.0, 0.1))),
            dict(overrides={"lr": 9.0, "seed": 0}, metrics=curve(loss=(1.0, 0.0))),
            dict(overrides={"lr": 9.0, "seed": 1}, status="diverged", metrics=curve(diverge_at=200)),
        ],
    )
    best = best_configs(summarize(collect(tmp_path)), by=["method"])
    assert list(best["lr"]) == [1.0, 1.0] and list(best["seed"]) == [0, 1]


def test_sequence_length():
    df = pd.DataFrame(
        {
            "dataset.name": ["mnist", "digits", "temporal_order"],
            "dataset.size_chunk": [4, 16, np.nan],
            "dataset.length": [np.nan, np.nan, 120],
        }
    )
    assert list(sequence_length(df)) == [196, 4, 120]


def test_write_results_load_and_select(tmp_path):
    write_multirun(tmp_path, [dict(overrides={"model.hidden": d}) for d in (16, 32)])
    out = write_results(tmp_path)
    assert out == tmp_path / "results.csv"
    df = load(out)
    assert len(df) == 12 and set(df["status"]) == {"completed"}
    assert set(select(df, ["model.hidden=32"])["job_dir"]) == {"1"}
    assert set(select(load(tmp_path), ["model.hidden=32", "method=tp"])["job_dir"]) == {"1"}


def test_bad_input_raises_one_kind_of_error_each(tmp_path):
    with pytest.raises(UsageError, match="no such file or dir"):
        load(tmp_path / "missing")
    with pytest.raises(DataError, match="no job dirs"):
        load(tmp_path)
    (tmp_path / "results.csv").write_text("job_dir,method,status,iteration\n")
    with pytest.raises(DataError, match="header only"):
        load(tmp_path / "results.csv")
    (tmp_path / "other.csv").write_text("a,b\n1,2\n")
    with pytest.raises(DataError, match="not a results.csv"):
        load(tmp_path / "other.csv")
    write_job(tmp_path / "runs" / "0", status=None)
    with pytest.warns(UserWarning), pytest.raises(DataError, match="no finished runs"):
        write_results(tmp_path / "runs")
    assert not (tmp_path / "runs" / "results.csv").exists()


@pytest.mark.parametrize(
    "where, error, match",
    [
        (["lr"], UsageError, "expected KEY=VALUE"),
        (["nokey=1"], UsageError, "no column 'nokey'"),
        (["lr=abc"], UsageError, "holds numbers"),
        (["lr=7"], DataError, "no run matches lr=7"),
    ],
)
def test_select_rejects_bad_conditions(tmp_path, where, error, match):
    write_multirun(tmp_path, [dict(overrides={"lr": lr}) for lr in (0.1, 1.0)])
    with pytest.raises(error, match=match):
        select(collect(tmp_path), where)
