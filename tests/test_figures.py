"""Figures: each writes a non-empty PNG and PDF; the numbers behind them are right."""

import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fakeruns import curve, gradients, write_job, write_multirun

from tpri import figures
from tpri.collect import collect, read_gradients

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"


def assert_written(paths):
    png, pdf = paths
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 1000
    assert pdf.read_bytes()[:5] == b"%PDF-" and pdf.stat().st_size > 1000


def run_script(name, argv):
    """Run `scripts/<name>.py` main(argv) in this process."""
    spec = importlib.util.spec_from_file_location(name, SCRIPTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.main([str(a) for a in argv])


def test_convergence_with_seeds(tmp_path):
    write_multirun(tmp_path, [
        dict(optimizer=opt, overrides={"seed": s}, metrics=curve(loss=(1.4, 0.2 + 0.1 * s)))
        for opt in ("tp", "sgd") for s in range(3)
    ])
    fig = figures.plot_convergence(collect(tmp_path))
    assert len(fig.axes) == 4 and len(fig.axes[0].lines) == 2
    assert_written(figures.save(fig, tmp_path / "out", "convergence"))


@pytest.fixture
def lr_reg_sweep(tmp_path):
    """lr x reg = {0.1, 1, 10} x {1, 10}: lr=10 diverged for reg=1, (10, 10) missing."""
    jobs = [dict(overrides={"lr": lr, "reg": reg}, metrics=curve(loss=(1.4, 1 / lr / reg)))
            for lr in (0.1, 1.0) for reg in (1.0, 10.0)]
    jobs.append(dict(overrides={"lr": 10.0, "reg": 1.0}, status="diverged",
                     metrics=curve(diverge_at=400)))
    return write_multirun(tmp_path, jobs)


def test_heatmap_marks_diverged_cells(lr_reg_sweep, tmp_path):
    fig, diverged = figures.plot_heatmap(collect(lr_reg_sweep))
    assert diverged == {("TP", 10.0, 1.0)}
    image = fig.axes[0].images[0].get_array()
    assert image.shape == (2, 3)  # reg x lr
    assert image.mask[0, 2] and image.mask[1, 2]  # diverged and missing: not scored
    assert image[0, 0] == pytest.approx((1.4 + 10) / 2)  # lr=0.1, reg=1
    assert_written(figures.save(fig, tmp_path / "out", "heatmap"))


def mnist_job(sweep, chunk, hidden, optimizer, lr, loss, accuracy, status="completed"):
    """A job dict of `write_multirun` on MNIST cut in chunks."""
    return dict(optimizer=optimizer, dataset="mnist", status=status,
                overrides={"dataset.size_chunk": chunk, "model.hidden": hidden, "lr": lr},
                metrics=curve(loss=loss, accuracy=accuracy,
                              diverge_at=200 if status == "diverged" else None))


@pytest.fixture
def winner_sweep(tmp_path):
    """T=196, d=16: TP is tuned to lr=1 (smaller train loss) whose accuracy is worse than BP's;
    BP's diverged config, best on accuracy, is excluded. T=49, d=16: BP only diverged."""
    return write_multirun(tmp_path, [
        mnist_job(tmp_path, 4, 16, "tp", 0.1, (1.4, 0.2), (0.25, 0.9)),
        mnist_job(tmp_path, 4, 16, "tp", 1.0, (1.4, 0.1), (0.25, 0.5)),
        mnist_job(tmp_path, 4, 16, "sgd", 0.1, (1.4, 0.5), (0.25, 0.7)),
        mnist_job(tmp_path, 4, 16, "sgd", 1.0, (1.4, 0.0), (1.0, 1.0), status="diverged"),
        mnist_job(tmp_path, 16, 16, "tp", 0.1, (1.4, 0.2), (0.25, 0.9)),
        mnist_job(tmp_path, 16, 16, "sgd", 1.0, (1.4, 0.0), (1.0, 1.0), status="diverged"),
        mnist_job(tmp_path, 16, 32, "tp", 0.1, (1.4, 0.2), (0.25, 0.75)),
        mnist_job(tmp_path, 16, 32, "adam", 0.1, (1.4, 0.2), (0.25, 0.95)),
    ])


def test_winner_table_by_hand(winner_sweep):
    table = figures.winner_table(collect(winner_sweep)).set_index(["T", "model.hidden"])
    assert table.loc[(196, 16), "TP"] == pytest.approx((0.25 + 0.5) / 2)
    assert table.loc[(196, 16), "BP"] == pytest.approx((0.25 + 0.7) / 2)
    assert table.loc[(196, 16), "winner"] == "BP"
    assert table.loc[(196, 16), "margin"] == pytest.approx(-0.1)
    assert table.loc[(49, 16), "winner"] == "TP" and np.isnan(table.loc[(49, 16), "margin"])
    assert table.loc[(49, 32), "winner"] == "BP"  # BP (Adam) counts as BP
    assert table.loc[(49, 32), "margin"] == pytest.approx(-0.1)


def test_winner_figure(winner_sweep, tmp_path):
    fig, table = figures.plot_winner(collect(winner_sweep))
    assert len(table) == 3
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert sorted(texts) == ["BP\n10.0", "BP\n10.0", "TP\nonly"]
    assert_written(figures.save(fig, tmp_path / "out", "winner"))


def test_sensitivity(tmp_path):
    write_multirun(tmp_path, [
        dict(optimizer=opt, overrides={"lr_target": v}, metrics=curve(accuracy=(0.25, 0.5 + v)))
        for opt in ("tp", "sgd") for v in (1e-4, 1e-3, 1e-2)
    ])
    fig = figures.plot_sensitivity(collect(tmp_path), key="lr_target")
    assert len(fig.axes) == 2 and len(fig.axes[0].lines) == 3
    assert_written(figures.save(fig, tmp_path / "out", "sensitivity"))


@pytest.fixture
def gradient_runs(tmp_path):
    return write_multirun(tmp_path, [
        dict(optimizer="sgd", grads=gradients()),
        dict(optimizer="tp", grads=gradients(seed=1)),
        dict(optimizer="tp"),
    ])


def test_gradients(gradient_runs, tmp_path):
    df = collect(gradient_runs)
    grads = read_gradients(df, gradient_runs)
    assert sorted(grads["job_dir"].unique()) == ["0", "1"]
    fig = figures.plot_gradients(grads, df[df["job_dir"].isin(grads["job_dir"])])
    assert len(fig.axes[0].collections) == 1 and len(fig.axes[1].collections) == 1
    assert_written(figures.save(fig, tmp_path / "out", "gradients"))


def test_length_scaling(tmp_path):
    jobs = []
    for length, bp_solved in [(30, [True, False]), (60, [False, False])]:
        for seed, solved in enumerate(bp_solved):
            top = 1.0 if solved else 0.5
            jobs += [dict(overrides={"dataset.length": length, "seed": seed}),
                     dict(optimizer="sgd", overrides={"dataset.length": length, "seed": seed},
                          metrics=curve(accuracy=(0.25, top)))]
    write_multirun(tmp_path, jobs)
    fig, table = figures.plot_length_scaling(collect(tmp_path), threshold=0.85)
    shares = table.set_index(["method", "T"])["share"]
    assert shares[("TP", 30)] == 1 and shares[("TP", 60)] == 1
    assert shares[("BP (SGD)", 30)] == 0.5 and shares[("BP (SGD)", 60)] == 0
    assert_written(figures.save(fig, tmp_path / "out", "length_scaling"))


@pytest.fixture
def bench_csv(tmp_path):
    rows = [dict(T=T, hidden=d, batch=20, method=m, median_ms=T * d * k / 1e3, ratio_to_bp=k)
            for T in (30, 60, 120) for d in (32, 100) for m, k in
            [("bp", 1.0), ("tp_graph", 1.5), ("tp_local", 1.2)]]
    path = tmp_path / "bench" / "benchmark.csv"
    path.parent.mkdir()
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def test_compute(bench_csv, tmp_path):
    fig = figures.plot_compute(pd.read_csv(bench_csv))
    assert [len(ax.lines) for ax in fig.axes] == [3, 3]
    assert fig.axes[0].get_title().endswith("100")
    assert_written(figures.save(fig, tmp_path / "out", "compute"))


def test_scripts(lr_reg_sweep, bench_csv, capsys):
    write_job(lr_reg_sweep / "9", optimizer="sgd", grads=gradients())
    write_job(lr_reg_sweep / "10", grads=gradients())
    out = lr_reg_sweep / "figures"
    run_script("collect", [lr_reg_sweep])
    results = lr_reg_sweep / "results.csv"
    run_script("plot_convergence", [results, "--out", out])
    run_script("plot_heatmap", [lr_reg_sweep, "--out", out, "--where", "optimizer=tp"])
    run_script("plot_sensitivity", [results, "--out", out, "--key", "lr"])
    run_script("plot_gradients", [results, "--out", out])
    run_script("plot_length_scaling", [results, "--out", out])
    run_script("plot_compute", [bench_csv, "--out", out])
    printed = capsys.readouterr().out
    assert "diverged: TP lr=10 reg=1" in printed
    names = ["convergence", "heatmap", "sensitivity_lr", "gradients", "length_scaling", "compute"]
    for name in names:
        assert_written([out / f"{name}.png", out / f"{name}.pdf"])
        assert str(out / f"{name}.png") in printed


def test_winner_script(winner_sweep, capsys):
    run_script("plot_winner", [winner_sweep])
    assert_written([winner_sweep / "winner.png", winner_sweep / "winner.pdf"])
    assert len(pd.read_csv(winner_sweep / "winner.csv")) == 3
