"""The Hydra app: config groups compose, the CLI runs single jobs and sweeps, outputs."""

import json

import pytest
from helpers import CONF, TINY, compose_config, read_metrics, train_cli

from tpri.run import run

GROUPS = ("dataset", "model", "optimizer")


@pytest.mark.parametrize(
    "group, option",
    [(group, path.stem) for group in GROUPS for path in sorted((CONF / group).glob("*.yaml"))],
)
def test_every_group_option_composes(group, option):
    cfg = compose_config([f"{group}={option}"])
    assert cfg[group]["name"] == option
    for other in GROUPS:
        assert "name" in cfg[other]


def test_defaults_are_the_papers_temporal_order_run():
    cfg = compose_config()
    assert cfg["dataset"] == {**cfg["dataset"], "name": "temporal_order", "length": 60, "bits": 1}
    assert cfg["model"] == {"name": "rnn", "hidden": 100, "activation": "tanh"}
    tp = cfg["optimizer"]
    assert (tp["name"], tp["lr"], tp["lr_target"], tp["reg"]) == ("tp", 0.1, 0.01, 10.0)
    assert (tp["targets"], tp["update"], tp["step"]) == ("linearized", "graph", "sgd")
    assert (cfg["batch_size"], cfg["max_iter"]) == (20, 2000)


def test_optimizer_options_follow_top_level_knobs():
    cfg = compose_config(["lr=0.5", "reg=3", "lr_target=0.2"])
    assert (cfg["optimizer"]["lr"], cfg["optimizer"]["reg"], cfg["optimizer"]["lr_target"]) == (0.5, 3, 0.2)
    assert compose_config(["optimizer=adam", "lr=1e-3"])["optimizer"]["lr"] == 1e-3


def test_the_readme_sweep_command_starts_three_jobs(tmp_path):
    train_cli(
        "optimizer=tp",
        "model.hidden=100",
        "-m",
        "reg=0.1,1,10",
        "max_iter=20",
        "eval_every=10",
        "dataset.length=20",
        "dataset.test_size=100",
        "dataset.eval_size=100",
        f"hydra.sweep.dir={tmp_path}",
    )
    jobs = sorted(p for p in tmp_path.iterdir() if p.is_dir())
    assert [p.name for p in jobs] == ["0", "1", "2"]
    for job, reg in zip(jobs, (0.1, 1.0, 10.0)):
        summary = json.loads((job / "summary.json").read_text())
        assert summary["config"]["reg"] == reg
        assert summary["status"] in ("completed", "diverged")
        assert (job / "metrics.csv").exists() and (job / ".hydra" / "config.yaml").exists()
        assert (job / "train.log").exists()


def test_single_run_writes_metrics_and_summary(tmp_path):
    train_cli(*TINY, "max_iter=40", "eval_every=20", f"hydra.run.dir={tmp_path}")
    rows = read_metrics(tmp_path / "metrics.csv", drop=())
    assert [int(r["iteration"]) for r in rows] == [0, 20, 40]
    assert set(rows[0]) == {"iteration", "time", "train_loss", "train_accuracy", "test_loss", "test_accuracy"}
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["iteration"] == 40
    assert summary["its_per_sec"] > 0 and summary["version"]
    assert summary["final"]["test_accuracy"] == float(rows[-1]["test_accuracy"])


def test_same_config_gives_identical_metrics(tmp_path):
    cfg = compose_config([*TINY, "max_iter=30", "eval_every=10"])
    run(cfg, tmp_path / "a")
    run(cfg, tmp_path / "b")
    assert read_metrics(tmp_path / "a" / "metrics.csv") == read_metrics(tmp_path / "b" / "metrics.csv")


def test_bp_and_adam_and_tp_variants_run(tmp_path):
    for i, overrides in enumerate(
        [
            ["optimizer=sgd", "lr=1e-3"],
            ["optimizer=adam", "lr=1e-3"],
            ["optimizer.targets=difference", "optimizer.update=local"],
            ["optimizer.step=adam", "lr=1e-3"],
            ["dataset=adding", "model.activation=identity"],
        ]
    ):
        cfg = compose_config([*TINY, "max_iter=10", "eval_every=5", *overrides])
        assert run(cfg, tmp_path / str(i))["status"] == "completed", overrides


def test_diagnostics_are_logged_when_asked(tmp_path):
    cfg = compose_config([*TINY, "max_iter=20", "eval_every=10", "log_gradients=true", "log_cosine=true"])
    run(cfg, tmp_path)
    rows = read_metrics(tmp_path / "metrics.csv")
    assert [r["iteration"] for r in rows] == ["0", "10", "20"]
    for row in rows[:2]:  # the update leaving iterations 0 and 10
        assert float(row["update_norm"]) > 0 and float(row["w_spectral_norm"]) > 0
        assert float(row["direction_norm"]) > float(row["update_norm"])  # before lr (0.1)
        assert -1 <= float(row["cos_rnn.weight_hh_l0"]) <= 1
    assert rows[2]["update_norm"] == "nan"  # no update leaves the last iterate
    grads = read_metrics(tmp_path / "gradients.csv", drop=())
    assert {int(r["iteration"]) for r in grads} == {0, 10}
    assert {int(r["step"]) for r in grads} == set(range(1, 21))
    last = [r for r in grads if int(r["iteration"]) == 10 and int(r["step"]) == 20][0]
    # the top displacement is -lr_target * dl/dh_T: its norm is lr_target x the adjoint's
    assert float(last["displacement_norm"]) == pytest.approx(0.01 * float(last["adjoint_norm"]), rel=1e-4)


def test_help_lists_tpri_flags_and_the_user_groups_not_the_schema(tmp_path):
    proc = train_cli("--help", cwd=tmp_path)
    out = proc.stdout
    assert proc.stderr == "" and "--resume DIR" in out and "--dry-run" in out
    groups = dict(
        line.strip().split(": ", 1) for line in out.splitlines() if line.startswith("  ") and ": " in line
    )
    for group in ("dataset", "model", "optimizer", "experiment", "sweep", "logger"):
        options = groups[group].split(", ")
        assert options == sorted(p.stem for p in (CONF / group).glob("*.yaml"))
    assert not any(g.startswith("schema") for g in groups) and "schema/" not in out
    assert not list(tmp_path.iterdir())  # help creates nothing
