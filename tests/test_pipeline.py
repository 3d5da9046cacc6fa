"""The figure pipelines: every experiment and sweep composes, the experiments hold the paper's
hyperparameters, and sweep -> plot runs end to end through the real CLI at a tiny budget."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import CONF, train_cli
from hydra import compose, initialize_config_dir
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf

from tpri.analysis.figures.cli import plot_main
from tpri.configs.rules import check_config

SWEEPS = sorted(p.stem for p in (CONF / "sweep").glob("*.yaml"))
EXPERIMENTS = sorted(p.stem for p in (CONF / "experiment").glob("*.yaml"))
# tiny temporal-order jobs: T = 20, small evaluation sets
TINY_TO = ["dataset.length=20", "dataset.test_size=100", "dataset.eval_size=100"]
PNG, PDF = b"\x89PNG\r\n\x1a\n", b"%PDF"


# ----------------------------------------------------------------------------- helpers


@pytest.fixture(scope="module")
def hydra_conf():
    """Compose inside one initialized config dir for the whole module."""
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        yield


def _compose(overrides, hydra_config=False):
    return compose("config", overrides=list(overrides), return_hydra_config=hydra_config)


def _resolved(cfg) -> dict:
    return {k: v for k, v in OmegaConf.to_container(cfg, resolve=True).items() if k != "hydra"}


def _plot(kind: str):
    """`tpri-plot KIND` as a function of its remaining arguments."""
    return lambda argv: plot_main([kind, *argv])


def _assert_figure(out_dir: Path, name: str) -> None:
    for ext, magic in (("png", PNG), ("pdf", PDF)):
        path = out_dir / f"{name}.{ext}"
        assert path.exists(), f"{path} not written"
        data = path.read_bytes()
        assert len(data) > 1000 and data.startswith(magic), f"{path} is not a {ext}"


def _summaries(sweep_dir: Path) -> list[dict]:
    jobs = sorted((p for p in sweep_dir.iterdir() if (p / ".hydra").is_dir()), key=lambda p: int(p.name))
    return [json.loads((job / "summary.json").read_text()) for job in jobs]


GROUPS = ("experiment", "dataset", "model", "optimizer")


def _job_overrides(params: dict) -> list[list[str]]:
    """Overrides of a few jobs of the basic sweep `params`: the first job, then one job per
    other option of each config group swept (experiment, dataset, ...) and one with the last
    value of each other swept key, the remaining keys at their first value."""
    parsed = OverridesParser.create().parse_overrides([f"{k}={v}" for k, v in params.items()])
    choices = []
    for override in parsed:
        values = (
            list(override.sweep_string_iterator())
            if override.is_sweep_override()
            else [override.get_value_element_as_str()]
        )
        key = override.get_key_element()
        if key not in GROUPS:
            values = list(dict.fromkeys([values[0], values[-1]]))
        choices.append([f"{key}={v}" for v in values])
    firsts = [c[0] for c in choices]
    jobs = [firsts]
    for i, values in enumerate(choices):
        jobs += [firsts[:i] + [value] + firsts[i + 1 :] for value in values[1:]]
    return jobs


# ----------------------------------------------------------------------------- composition


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_every_experiment_composes_to_a_valid_config(hydra_conf, name):
    cfg = _resolved(_compose([f"experiment={name}"]))
    check_config(cfg)
    assert cfg["max_iter"] >= 400 and cfg["eval_every"] in (50, 200)


@pytest.mark.parametrize("name", SWEEPS)
def test_every_sweep_and_each_of_its_jobs_composes(hydra_conf, name):
    cfg = _compose([f"sweep={name}"], hydra_config=True)
    assert cfg.hydra.mode.name == "MULTIRUN"
    params = OmegaConf.to_container(cfg.hydra.sweeper.params)
    assert params, f"sweep {name}: no hydra.sweeper.params"
    choices = cfg.hydra.runtime.choices
    if choices["hydra/sweeper"] == "optuna":
        assert cfg.hydra.sweeper.direction == "minimize"
        assert all(str(v).startswith(("tag(log", "interval(")) for v in params.values())
        jobs = [[]]
    else:
        assert choices["hydra/sweeper"] == "basic"
        jobs = _job_overrides(params)
    assert choices["hydra/launcher"] == "joblib"
    for job in jobs:
        job_cfg = _resolved(_compose([f"sweep={name}", *job]))
        check_config(job_cfg)
        assert job_cfg["max_iter"] >= 1


def _size(name: str) -> tuple[int, int]:
    """(number of jobs, max_iter of its first job) of a basic sweep."""
    params = OmegaConf.to_container(_compose([f"sweep={name}"], hydra_config=True).hydra.sweeper.params)
    parsed = OverridesParser.create().parse_overrides([f"{k}={v}" for k, v in params.items()])
    n_jobs = 1
    for override in parsed:
        n_jobs *= len(list(override.sweep_string_iterator())) if override.is_sweep_override() else 1
    first = _resolved(_compose([f"sweep={name}", *_job_overrides(params)[0]]))
    return n_jobs, first["max_iter"]


@pytest.mark.parametrize("name", [n for n in SWEEPS if n.endswith("_smoke")])
def test_smoke_sweeps_are_smaller_than_their_paper_sweeps(hydra_conf, name):
    parent = {"sensitivity_smoke": "sensitivity_lr_target"}.get(name, name.removesuffix("_smoke"))
    assert parent in SWEEPS, f"{name}: no paper sweep {parent}"
    (small_jobs, small_iters), (big_jobs, big_iters) = _size(name), _size(parent)
    assert small_iters <= big_iters
    assert small_jobs * small_iters < big_jobs * big_iters  # iterations in all


def test_winner_sweep_tunes_lr_target_for_tp_and_lr_for_bp(hydra_conf):
    tp = _resolved(_compose(["sweep=winner", "experiment=winner_tp", "tuned_lr=1e-3"]))
    bp = _resolved(_compose(["sweep=winner", "experiment=winner_bp", "tuned_lr=1e-3"]))
    assert (tp["optimizer"]["name"], tp["lr"], tp["lr_target"], tp["reg"]) == ("tp", 0.1, 1e-3, 1)
    assert (bp["optimizer"]["name"], bp["lr"], bp["optimizer"]["momentum"]) == ("sgd", 1e-3, 0)
    for cfg in (tp, bp):
        assert (cfg["dataset"]["name"], cfg["batch_size"], cfg["max_iter"]) == ("mnist", 512, 400)
    params = _compose(["sweep=winner"], hydra_config=True).hydra.sweeper.params
    assert params["dataset.size_chunk"] == "1,2,4,16,56,196"
    assert params["model.hidden"] == "16,32,64,128,256,512"


# ----------------------------------------------------------------------------- the paper's table
# Every experiment's and sweep's settings against the authors': tests/test_paper_settings.py
# (the authors' values live once, in tpri/configs/paper_settings.py).


def test_comparison_experiments_change_only_the_method(hydra_conf):
    base = _resolved(_compose(["experiment=mnist"]))
    diff = _resolved(_compose(["experiment=mnist_difference"]))
    assert diff["optimizer"] == {**base["optimizer"], "targets": "difference"}
    dtp = _resolved(_compose(["experiment=mnist_dtp"]))
    assert dtp["optimizer"]["name"] == "dtp" and dtp["dataset"] == base["dataset"]
    assert (dtp["lr"], dtp["lr_target"], dtp["optimizer"]["lr_reverse"]) == (1e-2, 1e-7, 1e-8)


# ----------------------------------------------------------------------------- end to end


def test_convergence_pipeline(tmp_path):
    """sweep=convergence_smoke (TP vs BP, 2 seeds) -> tpri-plot convergence."""
    runs = tmp_path / "runs"
    grid = "hydra.sweeper.params.lr=1e-2"  # one step size of the smoke grid
    train_cli(
        "sweep=convergence_smoke", grid, "max_iter=20", "eval_every=10", *TINY_TO, f"hydra.sweep.dir={runs}"
    )
    summaries = _summaries(runs)
    assert len(summaries) == 4
    assert {s["config"]["optimizer"]["name"] for s in summaries} == {"tp", "sgd"}
    assert sorted(s["config"]["seed"] for s in summaries) == [0, 0, 1, 1]
    assert all(s["status"] == "completed" and s["iteration"] == 20 for s in summaries)
    assert _plot("convergence")([str(runs), "--out", str(tmp_path / "fig")]) == 0
    _assert_figure(tmp_path / "fig", "convergence")


def test_heatmap_pipeline(tmp_path):
    """sweep=heatmap_smoke on digits, a 2 x 2 grid -> tpri-plot heatmap (diverged cells marked)."""
    runs = tmp_path / "runs"
    train_cli(
        "sweep=heatmap_smoke",
        "hydra/launcher=basic",
        "max_iter=10",
        "eval_every=5",
        'hydra.sweeper.params.lr="1e-3,100"',
        'hydra.sweeper.params.reg="1e-3,1e3"',
        f"hydra.sweep.dir={runs}",
    )
    summaries = _summaries(runs)
    assert len(summaries) == 4
    assert {s["config"]["dataset"]["name"] for s in summaries} == {"digits"}
    assert {(s["config"]["lr"], s["config"]["reg"]) for s in summaries} == {
        (1e-3, 1e-3),
        (1e-3, 1e3),
        (100, 1e-3),
        (100, 1e3),
    }
    assert _plot("heatmap")([str(runs)]) == 0
    _assert_figure(runs, "heatmap")


def test_sensitivity_pipeline(tmp_path):
    """sweep=sensitivity_smoke on digits, 2 values of lr_target -> tpri-plot sensitivity."""
    runs = tmp_path / "runs"
    train_cli(
        "sweep=sensitivity_smoke",
        "hydra/launcher=basic",
        "max_iter=10",
        "eval_every=5",
        'hydra.sweeper.params.lr_target="1e-6,1e-2"',
        "hydra.sweeper.params.seed=0",
        f"hydra.sweep.dir={runs}",
    )
    summaries = _summaries(runs)
    assert [s["config"]["lr_target"] for s in summaries] == [1e-6, 1e-2]
    assert all(s["status"] == "completed" and s["iteration"] == 10 for s in summaries)
    assert _plot("sensitivity")([str(runs), "--key", "lr_target", "--out", str(tmp_path)]) == 0
    _assert_figure(tmp_path, "sensitivity_lr_target")


def test_optuna_sweep_runs_two_trials(tmp_path):
    runs = tmp_path / "runs"
    train_cli(
        "sweep=tune_optuna",
        "hydra/launcher=basic",
        "hydra.sweeper.n_trials=2",
        "hydra.sweeper.n_jobs=2",
        "max_iter=10",
        "eval_every=5",
        *TINY_TO,
        f"hydra.sweep.dir={runs}",
    )
    summaries = _summaries(runs)
    assert len(summaries) == 2
    assert summaries[0]["config"]["lr"] != summaries[1]["config"]["lr"]
    result = OmegaConf.load(runs / "optimization_results.yaml")
    assert set(result.best_params) == {"lr", "lr_target", "reg"}
    finals = [s["final"]["train_loss"] if s["status"] == "completed" else float("inf") for s in summaries]
    assert result.best_value == pytest.approx(min(finals))


@pytest.mark.slow
@pytest.mark.parametrize(
    "sweep, plot, args, n_jobs",
    [
        ("gradients_smoke", "gradients", [], 2),
        ("winner_smoke", "winner", ["hydra.sweeper.params.tuned_lr=1e-2", "model.hidden=16"], 6),
        (
            "length_scaling_smoke",
            "length_scaling",
            ["hydra.sweeper.params.seed=0", "hydra.sweeper.params.lr=1e-2"],
            6,
        ),
    ],
)
def test_other_smoke_pipelines(tmp_path, sweep, plot, args, n_jobs):
    runs = tmp_path / "runs"
    train_cli(f"sweep={sweep}", "max_iter=10", "eval_every=5", *args, f"hydra.sweep.dir={runs}")
    assert len(_summaries(runs)) == n_jobs
    assert _plot(plot)([str(runs)]) == 0
    _assert_figure(runs, plot)
