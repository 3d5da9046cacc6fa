"""The analysis command lines (`tpri-collect`, `tpri-plot KIND`, scripts/collect.py):
one figure per task, one line and exit 1 or 2 on bad input with nothing written, index.html."""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from fakeruns import curve, gradients, write_bench, write_job, write_multirun

from tpri.analysis.figures import cli, kinds, registry
from tpri.analysis.figures.cli import collect_main, plot_main
from tpri.analysis.figures.registry import KINDS

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"
RUN_KINDS = [k for k in KINDS if k != "compute"]


def files(root: Path) -> set[Path]:
    return {p for p in root.rglob("*") if p.is_file()}


def assert_one_line_error(capsys, code, expected: int, match: str) -> None:
    err = capsys.readouterr().err.strip().splitlines()
    assert code == expected, err
    assert "Traceback" not in "\n".join(err)
    assert ": error: " in err[-1] and match in err[-1], err
    assert not any(": error: " in line for line in err[:-1])


@pytest.fixture
def quick_save(monkeypatch):
    """Figures saved as a small png and an empty pdf (test_figures checks the real save)."""

    def save(fig, out_dir, name):
        out_dir.mkdir(parents=True, exist_ok=True)
        png, pdf = out_dir / f"{name}.png", out_dir / f"{name}.pdf"
        fig.savefig(png, dpi=20)
        pdf.write_bytes(b"%PDF-")
        return [png, pdf]

    monkeypatch.setattr(cli, "save", save)


@pytest.fixture
def sweep(tmp_path):
    """TP and BP on temporal order T=60, lr x reg, 2 seeds, gradients logged."""
    runs = tmp_path / "runs"
    write_multirun(
        runs,
        [
            dict(
                optimizer=o,
                overrides={"lr": lr, "reg": 1.0, "dataset.length": T, "seed": s},
                grads=gradients(seed=s),
                metrics=curve(loss=(1.4, 0.1 * lr), accuracy=(0.25, 1.0)),
            )
            for o in ("tp", "sgd")
            for lr in (0.1, 1.0)
            for s in (0, 1)
            for T in (60,)
        ],
    )
    return runs


@pytest.mark.parametrize("kind", RUN_KINDS)
def test_every_kind_on_an_empty_dir_a_missing_path_and_no_runs(tmp_path, capsys, kind):
    empty = tmp_path / "empty"
    empty.mkdir()
    before = files(tmp_path)
    assert_one_line_error(capsys, plot_main([kind, str(empty)]), 1, "no job dirs")
    assert_one_line_error(capsys, plot_main([kind, str(tmp_path / "nope")]), 2, "no such file")
    write_job(tmp_path / "unfinished", status=None)
    before = files(tmp_path)
    assert_one_line_error(capsys, plot_main([kind, str(tmp_path / "unfinished")]), 1, "no finished runs")
    assert files(tmp_path) == before


@pytest.mark.parametrize("kind", RUN_KINDS)
def test_every_kind_on_a_malformed_or_header_only_csv(tmp_path, capsys, kind):
    bad = tmp_path / "results.csv"
    bad.write_bytes(b'a,b\n1,"2\n')
    assert_one_line_error(capsys, plot_main([kind, str(bad)]), 1, "not a readable csv")
    bad.write_text("job_dir,method,status,iteration\n")
    assert_one_line_error(capsys, plot_main([kind, str(bad)]), 1, "header only")
    assert files(tmp_path) == {bad}


@pytest.mark.parametrize(
    "argv, code, match",
    [
        (["convergence", "--where", "lr"], 2, "expected KEY=VALUE"),
        (["convergence", "--where", "nokey=1"], 2, "no column 'nokey'"),
        (["convergence", "--where", "lr=abc"], 2, "holds numbers"),
        (["convergence", "--where", "lr=7"], 1, "no run matches"),
        (["convergence", "--metrics", "nometric"], 2, "--metrics nometric: not a metric"),
        (["heatmap", "--x", "nokey"], 2, "--x nokey: no such column"),
        (["heatmap", "--y", "nokey"], 2, "--y nokey: no such column"),
        (["heatmap", "--metric", "lr"], 2, "--metric lr: not a metric"),
        (["heatmap", "--value", "max"], 2, "invalid choice: 'max'"),
        (["sensitivity", "--key", "nokey"], 2, "--key nokey"),
        (["winner", "--methods", "TP", "XP"], 2, "--methods XP"),
        (["gradients", "--job", "99"], 2, "--job 99"),
        (["length_scaling", "--threshold", "2"], 2, "--threshold 2"),
        (["convergence", "--bogus"], 2, "unrecognized arguments"),
    ],
)
def test_bad_arguments_get_one_line(sweep, capsys, argv, code, match):
    kind, *options = argv
    before = files(sweep)
    assert_one_line_error(capsys, plot_main([kind, str(sweep), *options]), code, match)
    assert files(sweep) == before


@pytest.mark.parametrize("kind", RUN_KINDS)
def test_bad_where_for_every_kind(sweep, capsys, kind):
    for where, code, match in [("nokey=1", 2, "no column 'nokey'"), ("seed=5", 1, "no run matches")]:
        assert_one_line_error(capsys, plot_main([kind, str(sweep), "--where", where]), code, match)
    assert not list(sweep.glob("*.png"))


def test_bad_out_for_every_kind(sweep, tmp_path, capsys):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    for kind in KINDS:
        source = write_bench(tmp_path / "b.csv") if kind == "compute" else sweep
        for out, match in [(blocker, "exists and is not a dir"), (blocker / "sub", "cannot create")]:
            code = plot_main([kind, str(source), "--out", str(out)])
            assert_one_line_error(capsys, code, 2, match)
    assert not list(sweep.glob("*.png"))


def test_compute_bad_input(tmp_path, capsys):
    path = tmp_path / "bench.csv"
    assert_one_line_error(capsys, plot_main(["compute", str(path)]), 2, "no such file")
    assert_one_line_error(capsys, plot_main(["compute", str(tmp_path)]), 2, "not a file")
    path.write_text("")
    assert_one_line_error(capsys, plot_main(["compute", str(path)]), 1, "not a readable csv")
    path.write_text("T,hidden,batch,method,median_ms\n")
    assert_one_line_error(capsys, plot_main(["compute", str(path)]), 1, "header only")
    path.write_text("T,hidden\n1,2\n")
    assert_one_line_error(capsys, plot_main(["compute", str(path)]), 1, "no column batch")
    write_bench(path)
    assert_one_line_error(capsys, plot_main(["compute", str(path), "--hidden", "7"]), 2, "--hidden 7")
    assert files(tmp_path) == {path}


def test_collect_command(sweep, tmp_path, capsys):
    assert_one_line_error(capsys, collect_main([str(tmp_path / "nope")]), 2, "no such file")
    (tmp_path / "empty").mkdir()
    assert_one_line_error(capsys, collect_main([str(tmp_path / "empty")]), 1, "no job dirs")
    code = collect_main([str(sweep), "--out", str(tmp_path / "no" / "r.csv")])
    assert_one_line_error(capsys, code, 2, "--out")
    assert collect_main([str(sweep)]) == 0
    assert capsys.readouterr().out.strip() == f"8 jobs (8 completed), 48 rows -> {sweep / 'results.csv'}"


def test_mixed_tasks_give_one_figure_per_task(tmp_path, capsys, quick_save):
    write_multirun(
        tmp_path,
        [
            dict(optimizer=o, dataset=d, overrides={"seed": s})
            for o in ("tp", "sgd")
            for d in ("adding", "temporal_order")
            for s in (0, 1)
        ],
    )
    assert plot_main(["convergence", str(tmp_path)]) == 0
    captured = capsys.readouterr()
    assert "one figure each (adding_T30, temporal_order_T60)" in captured.err
    for task in ("adding_T30", "temporal_order_T60"):
        side = json.loads((tmp_path / f"convergence_{task}.json").read_text())
        assert side["runs"] == 4 and side["table"][0]["completed"] == 2
    assert not (tmp_path / "convergence.png").exists()
    header = json.loads((tmp_path / "convergence_adding_T30.json").read_text())["header"]
    assert "adding, RNN, T=30" in header and "temporal order" not in header


def test_every_kind_through_tpri_plot_then_the_report(sweep, tmp_path, capsys, quick_save):
    def tpri_plot(*argv):
        return plot_main([str(a) for a in argv])

    def script(name, argv):
        spec = importlib.util.spec_from_file_location(name, SCRIPTS / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module.main([str(a) for a in argv])

    out = tmp_path / "figures"
    bench = write_bench(tmp_path / "bench" / "benchmark.csv")
    assert script("collect", [sweep]) == 0
    assert tpri_plot("convergence", sweep / "results.csv", "--out", out) == 0
    assert tpri_plot("heatmap", sweep, "--out", out, "--where", "optimizer=tp") == 0
    assert tpri_plot("sensitivity", sweep, "--out", out, "--key", "lr") == 0
    assert tpri_plot("gradients", sweep, "--out", out) == 0
    assert tpri_plot("length_scaling", sweep, "--out", out) == 0
    assert tpri_plot("winner", sweep, "--out", out) == 0
    assert tpri_plot("compute", bench, "--out", out) == 0
    names = ["convergence", "heatmap", "sensitivity_lr", "gradients", "length_scaling", "winner", "compute"]
    printed = capsys.readouterr().out
    for name in names:
        assert str(out / f"{name}.png") in printed and (out / f"{name}.pdf").exists()
    assert (out / "winner.csv").exists()
    assert tpri_plot("report", out) == 0
    assert tpri_plot("report", out, "--out", out / "index.html", "--markdown") == 0  # again
    assert "- `convergence.png` (temporal order, RNN, T=60, d=100;" in capsys.readouterr().out
    page = (out / "index.html").read_text()
    for name in names:
        assert f'<img src="{name}.png"' in page
    assert "tpri-plot sensitivity" in page and "--key lr" in page
    assert "8 runs." in page and "4 seeds" not in page
    assert "<td>BP (SGD, Nesterov 0.9)</td><td>4</td><td>4</td>" in page
    assert "step size γ_θ (lr)" in page and "$" not in page  # mathtext made plain
    # what the runs show, computed from them: lr=0.1 (smaller area) ends at train loss 0.01
    convergence = json.loads((out / "convergence.json").read_text())["findings"]
    assert convergence[1].startswith(
        "TP [lr=0.1, tuned over lr ∈ {0.1, 1}; at the edge of its grid (lr)]: train loss: "
        "seed 0: 0.01 at it 1000 (best 0.01 at it 1000); seed 1: 0.01 at it 1000"
    )
    assert "<li>TP [lr=0.1, tuned over" in page
    # every TP-vs-BP figure's sidecar names each method's chosen setting
    chosen = json.loads((out / "convergence.json").read_text())["chosen"]
    assert {r["method"]: r["chosen"] for r in chosen}["TP"] == "lr=0.1"
    assert (out / "convergence_chosen.csv").exists()
    for name in ("winner", "length_scaling"):
        rows = json.loads((out / f"{name}.json").read_text())["chosen"]
        assert rows and all(str(v) for r in rows for k, v in r.items() if k.endswith("chosen")), name
    assert "TP_chosen" in pd.read_csv(out / "winner.csv")


def test_report_without_figures(tmp_path, capsys):
    assert_one_line_error(capsys, plot_main(["report", str(tmp_path)]), 1, "no figures")
    assert_one_line_error(capsys, plot_main(["report", str(tmp_path / "x")]), 2, "not a dir")
    code = plot_main(["report", str(tmp_path), "--out", str(tmp_path / "no" / "i.html")])
    assert_one_line_error(capsys, code, 2, "expected an html path in an existing dir")
    assert not files(tmp_path)


def test_winner_of_diverged_runs_writes_nothing(tmp_path, capsys):
    write_multirun(
        tmp_path, [dict(optimizer=o, status="diverged", metrics=curve(diverge_at=200)) for o in ("tp", "sgd")]
    )
    before = files(tmp_path)
    assert_one_line_error(capsys, plot_main(["winner", str(tmp_path)]), 1, "diverged or failed")
    assert files(tmp_path) == before


def failed_jobs(root: Path, n: int = 2, **kwargs) -> None:
    """`n` jobs that failed before their first evaluation: no metrics.csv rows."""
    for i in range(n):
        write_job(root / f"failed{i}", status="failed", metrics=curve().iloc[:0], **kwargs)


def test_a_task_whose_jobs_all_failed_is_left_out_with_a_warning(tmp_path, capsys, quick_save):
    write_multirun(
        tmp_path / "good", [dict(optimizer=o, overrides={"seed": s}) for o in ("tp", "sgd") for s in (0, 1)]
    )
    failed_jobs(tmp_path / "bad", dataset="adding")
    assert plot_main(["convergence", str(tmp_path)]) == 0
    err = capsys.readouterr().err
    assert "warning: left out 2 jobs without any evaluation (2 failed)" in err and "Traceback" not in err
    side = json.loads((tmp_path / "convergence.json").read_text())
    assert side["runs"] == 4


@pytest.mark.parametrize("kind", RUN_KINDS)
def test_only_failed_runs_get_one_line_and_blame_no_flag(tmp_path, capsys, kind):
    failed_jobs(tmp_path, n=3)
    before = files(tmp_path)
    code = plot_main([kind, str(tmp_path)])
    assert_one_line_error(capsys, code, 1, "no finished runs with metrics: 3 failed jobs")
    assert files(tmp_path) == before


def set_cell(path: Path, column: str, value: str) -> Path:
    """`path` (a csv) with `value` in the first row of `column`."""
    table = pd.read_csv(path, dtype=str, keep_default_na=False)
    table.loc[0, column] = value
    table.to_csv(path, index=False)
    return path


@pytest.mark.parametrize("column, value", [("train_loss", "abc"), ("iteration", "x")])
def test_a_non_numeric_metric_in_results_csv_is_named(sweep, capsys, column, value):
    assert collect_main([str(sweep)]) == 0
    results = set_cell(sweep / "results.csv", column, value)
    before = files(sweep)
    code = plot_main(["convergence", str(results)])
    assert_one_line_error(capsys, code, 1, f"{results}: column {column} holds '{value}'")
    assert files(sweep) == before


def test_compute_names_a_non_numeric_cell(tmp_path, capsys):
    path = set_cell(write_bench(tmp_path / "bench.csv"), "median_ms", "abc")
    code = plot_main(["compute", str(path)])
    assert_one_line_error(capsys, code, 1, f"{path}: column median_ms holds 'abc'")
    assert files(tmp_path) == {path}


@pytest.mark.parametrize(
    "argv, match",
    [
        (["heatmap", "--x", "lr", "--y", "lr"], "the two axes must be different keys"),
        (["winner", "--methods", "TP", "TP"], "expected two different method families"),
        (["convergence", "--out", ""], "--out: expected a dir, got an empty path"),
        (["compute", "--out", " "], "--out: expected a dir, got an empty path"),
    ],
)
def test_contradictory_or_empty_arguments(sweep, tmp_path, capsys, argv, match):
    kind, *options = argv
    source = write_bench(tmp_path / "b" / "bench.csv") if kind == "compute" else sweep
    before = files(tmp_path)
    assert_one_line_error(capsys, plot_main([kind, str(source), *options]), 2, match)
    assert files(tmp_path) == before


def test_a_job_with_a_blank_iteration_is_skipped_with_a_warning(tmp_path, capsys, quick_save):
    write_job(tmp_path / "0")
    set_cell(write_job(tmp_path / "1") / "metrics.csv", "iteration", "")
    assert plot_main(["convergence", str(tmp_path)]) == 0
    err = capsys.readouterr().err
    assert "(blank iteration in metrics.csv)" in err and "Traceback" not in err
    assert json.loads((tmp_path / "convergence.json").read_text())["runs"] == 1


def _mark_smoke(root: Path, sweep_name: str) -> None:
    """Give every job's summary the provenance of a `sweep=NAME` launch."""
    for path in root.glob("*/summary.json"):
        summary = json.loads(path.read_text())
        summary["provenance"] = {**summary["provenance"], "command": ["train.py", f"sweep={sweep_name}"]}
        path.write_text(json.dumps(summary))


def test_smoke_banner_drawn_run_counts_and_seed_captions(sweep, tmp_path, capsys, quick_save):
    _mark_smoke(sweep, "convergence_smoke")
    out = tmp_path / "figs"
    assert plot_main(["convergence", str(sweep), "--out", str(out)]) == 0
    info = json.loads((out / "convergence.json").read_text())
    assert (
        info["header"].startswith("Convergence")
        and "SMOKE BUDGET (sweep convergence_smoke)" in info["header"]
    )
    assert (info["runs"], info["runs_in_dir"]) == (4, 8)  # each method's chosen lr, 2 seeds
    assert "4 runs" in info["header"]  # the header counts the runs drawn, as the page
    assert "thin lines: each of the 2 seeds; thick line: their median" in info["caption"]
    assert "std" not in info["caption"]
    assert plot_main(["report", str(out)]) == 0
    page = (out / "index.html").read_text()
    assert 'class="smoke"' in page and "4 runs drawn of 8 in the sweep" in page


def test_heatmap_over_a_string_key_with_a_diverged_cell(tmp_path, capsys, quick_save):
    write_multirun(
        tmp_path / "runs",
        [
            dict(optimizer=o, overrides={"lr": 1.0}, status="diverged", metrics=curve(diverge_at=400))
            if o == "sgd"
            else dict(optimizer=o, overrides={"lr": 1.0})
            for o in ("tp", "sgd")
        ],
    )
    assert plot_main(["heatmap", str(tmp_path / "runs"), "--y", "optimizer.name"]) == 0
    assert "diverged: BP (SGD, Nesterov 0.9) lr=1 optimizer.name=sgd" in capsys.readouterr().out


def test_every_sweep_has_one_figure_kind_in_the_registry():
    sweeps = sorted(p.stem for p in (Path(__file__).parents[1] / "conf" / "sweep").glob("*.yaml"))
    missing = [s for s in sweeps if s not in registry.NOT_PLOTTED and registry.kind_of(s) is None]
    assert not missing  # a new sweep needs its figure kind in tpri/analysis/figures/registry.py
    assert registry.unplotted(sweeps) == []
    assert registry.unplotted(["tune_optuna", "heatmap", "no_such_sweep"]) == ["no_such_sweep"]
    assert registry.plot_args("sensitivity_reg") == ["sensitivity", "--key", "reg"]
    assert registry.plot_args("convergence_mnist_smoke") == ["convergence"]
    assert plot_main(["sweep", "no_such_sweep", "dir"]) == 2


@pytest.mark.parametrize("name", list(KINDS))
def test_every_kind_has_its_functions_caption_and_options(name):
    kind = KINDS[name]
    assert callable(registry.load(kind.make)) and kind.caption.endswith(".") and kind.help
    assert kind.findings is None or callable(registry.load(kind.findings))
    assert kind.source in cli.SOURCES
    for sweep, options in kind.sweep_options.items():
        assert registry.kind_of(sweep) is kind
        source = "results.csv" if kind.source == "runs" else "bench.csv"
        cli.build_parser("tpri-plot").parse_args([name, source, *options])  # SystemExit if not its own


def test_reading_the_registry_imports_no_plotting_library():
    loaded = "sorted({'matplotlib', 'pandas'} & set(sys.modules))"
    code = f"import sys, tpri.analysis.figures.registry; print({loaded})"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    assert proc.stdout.strip() == "[]"


def toy_figure(args):
    """A figure kind added by one registry entry (see the test below)."""
    from matplotlib.figure import Figure

    runs = kinds.runs_of(args)
    return [kinds.Output(args.kind, Figure(), runs, facts=(runs, args.scale))]


def toy_findings(runs, scale):
    return [f"{runs['job_dir'].nunique()} runs at scale {scale}"]


def test_a_kind_added_by_one_registry_entry_plots_with_its_caption_and_findings(
    sweep, capsys, monkeypatch, quick_save
):
    module = toy_figure.__module__
    toy = registry.Kind(
        "toy",
        "a toy figure",
        "A toy caption.",
        make=f"{module}:toy_figure",
        findings=f"{module}:toy_findings",
        options=(registry.option("--scale", type=float, default=1.0),),
        sweeps=("toy*",),
        sweep_options={"toy_big": ("--scale", "2")},
    )
    monkeypatch.setitem(registry.KINDS, "toy", toy)
    assert plot_main(["sweep", "toy_big", str(sweep)]) == 0
    info = json.loads((sweep / "toy.json").read_text())
    assert info["caption"] == "A toy caption."
    assert info["findings"] == ["8 runs at scale 2.0"]
    assert info["command"] == f"tpri-plot toy {sweep} --scale 2"
    assert plot_main(["toy", str(sweep), "--scale", "x"]) == 2
    assert "argument --scale: invalid float value: 'x'" in capsys.readouterr().err


def test_sweep_and_sweeps_commands(sweep, tmp_path, capsys, quick_save):
    conf = Path(__file__).parents[1] / "conf" / "sweep"
    yamls = [conf / f"{name}.yaml" for name in ("heatmap_smoke", "tune_optuna", "sensitivity_lr")]
    assert plot_main(["sweeps", *map(str, yamls)]) == 0
    assert capsys.readouterr().out.split() == ["heatmap_smoke", "sensitivity_lr"]
    unknown = tmp_path / "no_kind.yaml"
    unknown.write_text("")
    assert_one_line_error(capsys, plot_main(["sweeps", str(unknown)]), 2, "sweeps no_kind: no figure kind")
    assert_one_line_error(capsys, plot_main(["sweeps", str(tmp_path / "x.yaml")]), 2, "no such file")
    assert_one_line_error(capsys, plot_main(["sweep", "tune_optuna", str(sweep)]), 2, "makes no figure")
    # the plot's own error is the one line, with its code
    missing = str(tmp_path / "nonexistent")
    assert_one_line_error(capsys, plot_main(["sweep", "convergence_smoke", missing]), 2, "no such file")
    assert plot_main(["sweep", "sensitivity_lr", str(sweep)]) == 0
    command = json.loads((sweep / "sensitivity_lr.json").read_text())["command"]
    assert command == f"tpri-plot sensitivity {sweep} --key lr"


def test_every_file_tpri_plot_writes_goes_through_the_atomic_writer(sweep, tmp_path, monkeypatch):
    import tpri.io

    through = []
    real = tpri.io.write_atomic
    monkeypatch.setattr(
        tpri.io, "write_atomic", lambda path, write: through.append(path) or real(path, write)
    )
    out = tmp_path / "figures"
    bench = write_bench(tmp_path / "bench" / "benchmark.csv")
    for argv in (["convergence", sweep], ["winner", sweep], ["compute", bench]):
        assert plot_main([str(a) for a in [*argv, "--out", out]]) == 0
    assert plot_main(["report", str(out)]) == 0
    written = files(out)
    assert {"convergence.png", "convergence.pdf", "convergence_chosen.csv", "winner.csv", "index.html"} <= {
        p.name for p in written
    }
    assert written == {Path(p) for p in through}
