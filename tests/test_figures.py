"""Figures: headers name the task and seeds, styles are fixed per method, divergence is
marked, and the numbers behind them are right (read from the figure's objects)."""

import matplotlib
import numpy as np
import pandas as pd
import pytest
from fakeruns import curve, gradients, write_bench, write_job, write_multirun
from matplotlib.collections import PolyCollection
from matplotlib.colors import to_hex

from tpri.analysis import figures
from tpri.analysis.collect import DataError, UsageError, collect, read_gradients
from tpri.analysis.figures import findings
from tpri.analysis.figures.style import tick_labels


def assert_written(paths):
    png, pdf = paths
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 1000
    assert pdf.read_bytes()[:5] == b"%PDF-" and pdf.stat().st_size > 1000


def figure_text(fig) -> str:
    """Every text object of a figure: header, titles, labels, legends, annotations."""
    texts = [t.get_text() for t in fig.texts]
    for legend in fig.legends:
        texts += [t.get_text() for t in legend.get_texts()] + [legend.get_title().get_text()]
    for ax in fig.axes:
        texts += [ax.get_title(), ax.get_xlabel(), ax.get_ylabel()]
        texts += [t.get_text() for t in ax.texts]
        if ax.get_legend():
            texts += [t.get_text() for t in ax.get_legend().get_texts()]
            texts.append(ax.get_legend().get_title().get_text())
    return "\n".join(texts)


def line_colors(fig) -> dict:
    """Legend label -> colour of the line handles of a figure's legends."""
    legends = list(fig.legends) + [ax.get_legend() for ax in fig.axes if ax.get_legend()]
    return {
        h.get_label().split(" — ")[0]: to_hex(h.get_color())
        for legend in legends
        for h in legend.legend_handles
        if hasattr(h, "get_color")
    }


def _seed_runs(tmp_path, seeds: int):
    return write_multirun(
        tmp_path,
        [
            dict(
                optimizer=opt,
                overrides={"seed": s},
                metrics=curve(loss=(1.4, 0.02 + 0.01 * s), accuracy=(0.25, 0.9 + 0.02 * s)),
            )
            for opt in ("tp", "sgd")
            for s in range(seeds)
        ],
    )


def test_convergence_with_three_seeds_draws_each_seed_and_the_median(tmp_path):
    fig = figures.plot_convergence(collect(_seed_runs(tmp_path, 3)))
    header = figures.header_text(fig)
    assert "temporal order, RNN, T=60, d=100" in header
    assert "batch=20" in header and "iterations=1000" in header and "3 seeds" in header
    assert "each method at a single setting, not tuned" in header
    loss_ax, acc_ax, loss_time_ax, acc_time_ax = fig.axes
    assert loss_ax.get_yscale() == "log"  # 1.4 -> 0.02: more than a decade
    assert acc_ax.get_ylim() == (0, 1) and acc_time_ax.get_ylim() == (0, 1)
    assert loss_time_ax.get_xlabel() == "training time (s)"
    assert not acc_ax.collections  # no band (PolyCollection) with 3 seeds
    thin = [line for line in acc_ax.lines if line.get_linewidth() < 1]
    thick = [line for line in acc_ax.lines if line.get_linewidth() > 2]
    assert len(thin) == 6 and len(thick) == 2  # 3 seeds + their median, per method
    tops = sorted(line.get_ydata()[-1] for line in thin[:3])
    assert tops == pytest.approx([0.9, 0.92, 0.94])  # each seed as it ran
    assert thick[0].get_ydata()[-1] == pytest.approx(0.92)  # the median
    assert "thin lines: each of the 3 seeds; thick line: their median" in figure_text(fig)
    assert_written(figures.save(fig, tmp_path / "out", "convergence"))


def test_convergence_with_more_seeds_draws_a_quantile_band_valid_on_a_log_axis(tmp_path):
    fig = figures.plot_convergence(collect(_seed_runs(tmp_path, 5)))
    loss_ax = fig.axes[0]
    assert loss_ax.get_yscale() == "log"
    bands = [c for c in loss_ax.collections if isinstance(c, PolyCollection)]
    assert len(bands) == 2
    low = min(path.vertices[:, 1].min() for band in bands for path in band.get_paths())
    assert low >= 0.02  # the 25% quantile of the seeds, never below the lowest seed (a std can)
    assert not [line for line in loss_ax.lines if line.get_linewidth() < 1]  # no seed lines
    assert "band: 25–75% quantiles of the seeds" in figure_text(fig)


def test_method_colours_are_the_same_in_every_figure(tmp_path):
    a = write_multirun(tmp_path / "a", [dict(optimizer=o) for o in ("tp", "sgd")])
    b = write_multirun(tmp_path / "b", [dict(optimizer=o) for o in ("adam", "dtp", "tp", "sgd")])
    first = line_colors(figures.plot_convergence(collect(a)))
    second = line_colors(figures.plot_convergence(collect(b)))
    assert set(first) == {"TP", "BP (SGD, Nesterov 0.9)"}
    assert set(second) == set(first) | {"BP (Adam)", "DTP-PI (Nesterov 0.9)"}
    for method, color in first.items():
        assert second[method] == color == to_hex(figures.method_style(method).color)
    assert len(set(second.values())) == 4  # distinct


def test_diverged_run_ends_with_a_marker_and_says_where(tmp_path):
    write_multirun(
        tmp_path,
        [
            dict(optimizer="tp"),
            dict(optimizer="sgd", status="diverged", metrics=curve(diverge_at=400)),
        ],
    )
    fig = figures.plot_convergence(collect(tmp_path))
    assert "BP (SGD, Nesterov 0.9): diverged at it 400" in figure_text(fig)
    marks = [line for line in fig.axes[0].lines if line.get_marker() == "X"]
    # at the iteration where it diverged, not at its last evaluation (200); at its last finite loss
    assert len(marks) == 1 and list(marks[0].get_xdata()) == [400]
    assert list(marks[0].get_ydata()) == pytest.approx([1.4 + 0.2 * (0.2 - 1.4)])


def test_mixed_tasks_are_refused_with_the_filter_to_use(tmp_path):
    write_multirun(
        tmp_path, [dict(optimizer="tp", dataset="adding"), dict(optimizer="sgd", dataset="temporal_order")]
    )
    with pytest.raises(UsageError, match="2 different tasks") as error:
        figures.plot_convergence(collect(tmp_path))
    assert "adding, RNN" in str(error.value) and "temporal order, RNN" in str(error.value)
    assert "--where dataset.name=adding" in str(error.value)


def test_task_names_as_run(tmp_path):
    write_job(tmp_path / "0", dataset="digits", model="gru", overrides={"dataset.permute": True})
    fig = figures.plot_convergence(collect(tmp_path))
    assert "permuted digits 8x8 as a stand-in for MNIST, GRU, T=64" in figures.header_text(fig)
    assert "1 seed per setting" in figures.header_text(fig)


def test_no_global_style_change_and_truetype_fonts(tmp_path):
    before = dict(matplotlib.rcParams)
    write_job(tmp_path / "0")
    fig = figures.plot_convergence(collect(tmp_path))
    _, pdf = figures.save(fig, tmp_path / "out", "convergence")
    assert dict(matplotlib.rcParams) == before
    content = pdf.read_bytes()
    assert b"/FontFile2" in content and b"/Type3" not in content


@pytest.fixture
def lr_reg_sweep(tmp_path):
    """lr x reg = {0.1, 1, 10} x {1, 10}: lr=10 diverged for reg=1, (10, 10) missing."""
    jobs = [
        dict(overrides={"lr": lr, "reg": reg}, metrics=curve(loss=(1.4, 1 / lr / reg)))
        for lr in (0.1, 1.0)
        for reg in (1.0, 10.0)
    ]
    jobs.append(dict(overrides={"lr": 10.0, "reg": 1.0}, status="diverged", metrics=curve(diverge_at=400)))
    return write_multirun(tmp_path, jobs)


def test_heatmap_marks_diverged_cells(lr_reg_sweep, tmp_path):
    fig, diverged = figures.plot_heatmap(collect(lr_reg_sweep))
    assert diverged == {("TP", 10.0, 1.0)}
    image = fig.axes[0].images[0].get_array()
    assert image.shape == (2, 3)  # reg x lr
    assert image.mask[0, 2] and image.mask[1, 2]  # diverged and missing: not scored
    assert image[0, 0] == pytest.approx((1.4 + 10) / 2)  # lr=0.1, reg=1
    text = figure_text(fig)
    assert "×\nit 400" in text and "diverged at iteration N (not scored)" in text
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["0.1", "1", "10"]
    assert "1 seed per setting" in figures.header_text(fig)
    assert_written(figures.save(fig, tmp_path / "out", "heatmap"))


def test_heatmap_findings_are_computed_from_the_runs(lr_reg_sweep):
    notes = findings.heatmap(collect(lr_reg_sweep), "lr", "reg", "train_loss", "auc")
    # final losses 1 / (lr reg): the area (mean of the two ends) is smallest at lr=1, reg=10
    assert notes == [
        "TP: smallest mean over training train loss 0.75 at lr=1, reg=10; largest 5.7 at lr=0.1, reg=1",
        "TP: diverged (lr, reg): (10, 1) at it 400",
    ]


def test_a_key_varying_off_the_axes_is_refused_unless_averaged_over(tmp_path):
    write_multirun(
        tmp_path,
        [dict(overrides={"lr": lr, "reg": 1.0, "lr_target": v}) for lr in (0.1, 1.0) for v in (1e-3, 1e-2)],
    )
    df = collect(tmp_path)
    with pytest.raises(UsageError, match="differ in lr_target.*--average-over lr_target"):
        figures.plot_heatmap(df)
    with pytest.raises(UsageError, match="sensitivity to reg: runs drawn together differ in lr, lr_target"):
        figures.plot_sensitivity(df, key="reg")
    fig, _ = figures.plot_heatmap(df, average_over=["lr_target"])
    assert "averaged over lr_target ∈ {0.001, 0.01} (--average-over)" in figures.header_text(fig)
    fig = figures.plot_sensitivity(df, key="lr", average_over=["lr_target"])
    assert "averaged over lr_target" in figures.header_text(fig)


def mnist_job(sweep, chunk, hidden, optimizer, lr, loss, accuracy, status="completed"):
    """A job dict of `write_multirun` on MNIST cut in chunks."""
    return dict(
        optimizer=optimizer,
        dataset="mnist",
        status=status,
        overrides={"dataset.size_chunk": chunk, "model.hidden": hidden, "lr": lr},
        metrics=curve(loss=loss, accuracy=accuracy, diverge_at=200 if status == "diverged" else None),
    )


@pytest.fixture
def winner_sweep(tmp_path):
    """T=196, d=16: TP is tuned to lr=1 (smaller train loss) whose accuracy is worse than BP's;
    BP's diverged config, best on accuracy, is excluded. T=49, d=16: BP only diverged."""
    return write_multirun(
        tmp_path,
        [
            mnist_job(tmp_path, 4, 16, "tp", 0.1, (1.4, 0.2), (0.25, 0.9)),
            mnist_job(tmp_path, 4, 16, "tp", 1.0, (1.4, 0.1), (0.25, 0.5)),
            mnist_job(tmp_path, 4, 16, "sgd", 0.1, (1.4, 0.5), (0.25, 0.7)),
            mnist_job(tmp_path, 4, 16, "sgd", 1.0, (1.4, 0.0), (1.0, 1.0), status="diverged"),
            mnist_job(tmp_path, 16, 16, "tp", 0.1, (1.4, 0.2), (0.25, 0.9)),
            mnist_job(tmp_path, 16, 16, "sgd", 1.0, (1.4, 0.0), (1.0, 1.0), status="diverged"),
            mnist_job(tmp_path, 16, 32, "tp", 0.1, (1.4, 0.2), (0.25, 0.75)),
            mnist_job(tmp_path, 16, 32, "adam", 0.1, (1.4, 0.2), (0.25, 0.95)),
        ],
    )


def test_winner_table_by_hand(winner_sweep):
    table = figures.winner_table(collect(winner_sweep)).set_index(["T", "model.hidden"])
    assert table.loc[(196, 16), "TP"] == pytest.approx((0.25 + 0.5) / 2)
    assert table.loc[(196, 16), "BP"] == pytest.approx((0.25 + 0.7) / 2)
    assert table.loc[(196, 16), "winner"] == "BP"
    assert table.loc[(196, 16), "margin"] == pytest.approx(-0.1)
    assert table.loc[(49, 16), "winner"] == "TP" and np.isnan(table.loc[(49, 16), "margin"])
    assert table.loc[(49, 32), "winner"] == "BP"  # BP (Adam) counts as BP
    assert table.loc[(49, 32), "margin"] == pytest.approx(-0.1)
    # each method's chosen setting, flagged at the edge of its grid {0.1, 1}
    assert table.loc[(196, 16), "TP_chosen"] == "lr=1" and table.loc[(196, 16), "TP_at_edge"]
    assert table.loc[(196, 16), "BP_chosen"] == "lr=0.1" and table.loc[(196, 16), "BP_at_edge"]
    assert table.loc[(49, 32), "TP_chosen"] == "single setting, not tuned"


def test_winner_ties_go_to_bp(tmp_path):
    write_multirun(
        tmp_path,
        [mnist_job(tmp_path, 4, 16, o, 0.1, (1.4, 0.2), (0.25, 0.9)) for o in ("tp", "sgd")],
    )
    table = figures.winner_table(collect(tmp_path))
    assert table["margin"].iloc[0] == 0 and table["winner"].iloc[0] == "BP"


def test_winner_figure(winner_sweep, tmp_path):
    fig, table = figures.plot_winner(collect(winner_sweep))
    assert len(table) == 3
    texts = [t.get_text() for t in fig.axes[0].texts]
    # the signed margin TP - BP, as the colour; a dagger counts diverged runs of the cell
    assert sorted(texts) == ["BP\n−10.0", "BP\n−10.0\n†BP 1\nTP 1!\nBP 0.1!", "TP only\n†BP 1"]
    assert "2 choices at the edge of their grid (marked !)" in figures.header_text(fig)
    assert "TP wins only if strictly larger" in figures.header_text(fig)
    assert "percentage points" in figure_text(fig)
    assert "T ∈ {4, 49, 196}" not in figures.header_text(fig)
    assert "sequential MNIST" in figures.header_text(fig)
    assert_written(figures.save(fig, tmp_path / "out", "winner"))


def test_winner_of_diverged_runs_only_is_an_error(tmp_path):
    write_multirun(
        tmp_path,
        [mnist_job(tmp_path, 4, 16, o, 1.0, (1.4, 0.0), (1.0, 1.0), "diverged") for o in ("tp", "sgd")],
    )
    with pytest.raises(DataError, match="all 2 runs diverged or failed"):
        figures.plot_winner(collect(tmp_path))


def test_sensitivity(tmp_path):
    write_multirun(
        tmp_path,
        [
            dict(optimizer=opt, overrides={"lr_target": v}, metrics=curve(accuracy=(0.25, 0.5 + v)))
            for opt in ("tp", "sgd")
            for v in (1e-4, 1e-3, 1e-2)
        ]
        + [dict(overrides={"lr_target": 1.0}, status="diverged", metrics=curve(diverge_at=200))],
    )
    fig = figures.plot_sensitivity(collect(tmp_path), key="lr_target")
    assert [ax.get_title() for ax in fig.axes] == ["BP (SGD, Nesterov 0.9)", "TP"]
    tp = fig.axes[1]
    assert len(tp.lines) == 4 + 1  # 4 values, 1 diverged mark
    legend = [t.get_text() for t in tp.get_legend().get_texts()]
    assert legend == ["$10^{-4}$", "$10^{-3}$", "$10^{-2}$", "$10^{0}$", "$10^{0}$: diverged at it 200"]
    styles = {(line.get_color(), line.get_linestyle()) for line in tp.lines[:4]}
    assert len(styles) == 4  # overlapping values stay distinguishable
    assert tp.get_ylim() == (0, 1)
    assert_written(figures.save(fig, tmp_path / "out", "sensitivity"))


@pytest.fixture
def gradient_runs(tmp_path):
    return write_multirun(
        tmp_path,
        [
            dict(optimizer="sgd", grads=gradients()),
            dict(optimizer="tp", grads=gradients(seed=1)),
            dict(optimizer="tp"),
        ],
    )


def test_gradients(gradient_runs, tmp_path):
    df = collect(gradient_runs)
    grads = read_gradients(df, gradient_runs)
    assert sorted(grads["job_dir"].unique()) == ["0", "1"]
    grads.loc[grads["step"] <= 2, "displacement_norm"] = 0.0  # underflow
    fig = figures.plot_gradients(grads, df[df["job_dir"].isin(grads["job_dir"])])
    assert len(fig.axes[0].collections) == 1 and len(fig.axes[1].collections) == 1
    assert "grey cell: norm exactly 0 (every entry of the vector is 0)" in figure_text(fig)
    # both top panels read the TP run (it logged both), at the same iterations
    assert all("TP run" in ax.get_title() for ax in fig.axes[:2])
    tp = grads[grads["job_dir"] == "1"].pivot_table(index="step", columns="iteration", values="adjoint_norm")
    drawn = fig.axes[0].collections[0].get_array()
    np.testing.assert_allclose(np.ma.getdata(drawn).ravel(), tp.to_numpy().ravel())
    assert "same TP run at the same 3 iterations" in figures.header_text(fig)
    assert "TP — single setting, not tuned" in figure_text(fig)
    assert fig.axes[2].get_yscale() == "log"  # update norms 1 .. 1/401 (no direction_norm logged)
    assert_written(figures.save(fig, tmp_path / "out", "gradients"))


def test_length_scaling(tmp_path):
    jobs = []
    for length, bp_solved in [(30, [True, False]), (60, [False, False])]:
        for seed, solved in enumerate(bp_solved):
            top = 1.0 if solved else 0.5
            jobs += [
                dict(overrides={"dataset.length": length, "seed": seed}),
                dict(
                    optimizer="sgd",
                    overrides={"dataset.length": length, "seed": seed},
                    metrics=curve(accuracy=(0.25, top)),
                ),
            ]
    jobs[-1].update(status="diverged", metrics=curve(diverge_at=400))  # BP, T=60, seed 1
    write_multirun(tmp_path, jobs)
    fig, table = figures.plot_length_scaling(collect(tmp_path), threshold=0.85)
    shares = table.set_index(["method", "T"])["share"]
    assert shares[("TP", 30)] == 1 and shares[("TP", 60)] == 1
    bp = "BP (SGD, Nesterov 0.9)"
    assert shares[("TP", 30)] == 1 and shares[(bp, 30)] == 0.5 and shares[(bp, 60)] == 0
    assert "T ∈ {30, 60}" in figures.header_text(fig) and "2 seeds" in figures.header_text(fig)
    assert table.set_index(["method", "T"]).loc[(bp, 60), ["seeds", "diverged"]].tolist() == [2, 1]
    marks = [line for line in fig.axes[0].lines if line.get_marker() == "X"]
    assert len(marks) == 1 and list(marks[0].get_xdata()) == [60]
    assert_written(figures.save(fig, tmp_path / "out", "length_scaling"))


def test_length_scaling_findings_say_bp_solves_with_a_tuned_lr(tmp_path):
    jobs = []
    for length in (10, 20):
        for seed in (0, 1):
            for lr in (1e-5, 1e-3, 1e-1):
                solves = lr == 1e-3 and (length == 10 or seed == 0)
                jobs.append(
                    dict(
                        optimizer="sgd",
                        overrides={"dataset.length": length, "seed": seed, "lr": lr},
                        metrics=curve(accuracy=(0.25, 1.0 if solves else 0.3)),
                        status="diverged" if lr == 1e-1 else "completed",
                    )
                )
                jobs.append(dict(overrides={"dataset.length": length, "seed": seed, "lr": lr}))
    write_multirun(tmp_path, jobs)
    df = collect(tmp_path)
    fig, table = figures.plot_length_scaling(df, threshold=0.99)
    notes = findings.length_scaling(table)
    bp = [n for n in notes if n.startswith("BP")]
    assert bp[0] == (
        "BP (SGD, Nesterov 0.9): solves T=10 in 2 of 2 seeds (lr=0.001), T=20 in 1 of 2 seeds (lr=0.001)"
    )
    assert bp[1] == "BP (SGD, Nesterov 0.9): 4 runs of settings not chosen diverged"
    assert "selection per method and T: the setting with the largest share" in figures.header_text(fig)
    assert any("tuned per T over lr ∈ {1e-05, 0.001, 0.1}" in t for t in figure_text(fig).splitlines())


def test_tick_labels_use_one_format_per_axis():
    assert tick_labels([1e-3, 0.1, 10]) == ["$10^{-3}$", "$10^{-1}$", "$10^{1}$"]
    assert tick_labels([32, 100]) == ["32", "100"]
    assert tick_labels([0.1, 1, 10]) == ["0.1", "1", "10"]
    assert tick_labels([1e-4, 3e-4]) == ["0.0001", "0.0003"]


def test_compute_with_and_without_memory(tmp_path):
    fig = figures.plot_compute(pd.read_csv(write_bench(tmp_path / "b.csv")))
    assert [len(ax.lines) for ax in fig.axes] == [4, 4, 4]
    assert fig.axes[0].get_title().endswith("100") and fig.axes[2].get_ylabel() == "peak memory (MiB)"
    assert set(line_colors(fig)) == {"BP", "TP", "TP (local)", "plain RNN"}
    assert_written(figures.save(fig, tmp_path / "out", "compute"))
    old = figures.plot_compute(pd.read_csv(write_bench(tmp_path / "old.csv", memory=False)))
    assert len(old.axes) == 2 and "no peak_mib column" in figures.header_text(old)


def test_compute_of_a_memory_only_csv(tmp_path):
    """benchmark.py --no-time leaves median_ms empty: the figure draws the memory panel alone
    (a log axis of no positive value was a traceback) and the findings give MiB only."""
    bench = pd.read_csv(write_bench(tmp_path / "b.csv"))
    bench["median_ms"] = float("nan")
    bench["ratio_to_bp"] = float("nan")
    fig = figures.plot_compute(bench)
    assert [ax.get_ylabel() for ax in fig.axes] == ["peak memory (MiB)"]
    assert "no median_ms values" in figures.header_text(fig)
    lines = findings.compute(bench)
    assert lines and all(line.endswith("MiB") and " ms" not in line for line in lines)
    bench["peak_mib"] = float("nan")
    with pytest.raises(DataError, match="neither times"):
        figures.plot_compute(bench)
