"""A regular (non-editable) install works outside the checkout: the wheel carries the configs
(conf/ as the package tpri.conf) and its console scripts run a job, collect and plot from another
directory. The wheel is built from a copy of the sources and installed into a target dir that only
PYTHONPATH points at (dependencies come from the running environment)."""

import configparser
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parent.parent
SOURCES = ("pyproject.toml", "setup.py", "README.md", "LICENSE", "tpri", "conf", "hydra_plugins")


def _pip(*args: str, cwd: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "--disable-pip-version-check", *args],
        cwd=cwd,
        check=True,
        capture_output=True,
        text=True,
    )


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> dict:
    """Build the wheel from a clean copy of the sources (no stale build/), install it with --no-deps
    into a target dir; returns the wheel, the target and a scratch dir outside the checkout."""
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    src.mkdir()
    for name in SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(ROOT / name, src / name)
    _pip(
        "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-w", str(tmp / "dist"), str(src), cwd=tmp
    )
    (wheel,) = (tmp / "dist").glob("tpri-*.whl")
    target = tmp / "site"
    _pip("install", "--no-deps", "--no-index", "--target", str(target), str(wheel), cwd=tmp)
    elsewhere = tmp / "elsewhere"
    elsewhere.mkdir()
    return {"wheel": wheel, "target": target, "cwd": elsewhere, "tmp": tmp}


def _script(installed: dict, name: str, *args: str) -> subprocess.CompletedProcess:
    """Run an installed console script from outside the checkout, importing tpri from the target."""
    env = {**os.environ, "PYTHONPATH": str(installed["target"])}
    return subprocess.run(
        [str(installed["target"] / "bin" / name), *args],
        cwd=installed["cwd"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def _entry_points(installed: dict) -> set[str]:
    (info,) = installed["target"].glob("tpri-*.dist-info")
    parser = configparser.ConfigParser()
    parser.read(info / "entry_points.txt")
    return set(parser["console_scripts"]) if parser.has_section("console_scripts") else set()


@pytest.fixture(scope="module")
def run_dir(installed) -> Path:
    out = installed["tmp"] / "runs" / "short"
    result = _script(installed, "tpri-train", "max_iter=20", "eval_every=10", f"hydra.run.dir={out}")
    assert result.returncode == 0, result.stderr
    return out


def test_the_wheel_ships_every_config_of_the_checkout(installed):
    with zipfile.ZipFile(installed["wheel"]) as wheel:
        shipped = {
            name.removeprefix("tpri/conf/")
            for name in wheel.namelist()
            if name.startswith("tpri/conf/") and name.endswith(".yaml")
        }
        assert "tpri-0.1.0.dist-info/licenses/LICENSE" in wheel.namelist()
    in_checkout = {str(p.relative_to(ROOT / "conf")) for p in (ROOT / "conf").rglob("*.yaml")}
    assert shipped == in_checkout and "config.yaml" in shipped


def test_a_short_job_runs_from_another_directory(installed, run_dir):
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "completed"
    assert list(pd.read_csv(run_dir / "metrics.csv")["iteration"]) == [0, 10, 20]
    assert not (installed["cwd"] / "outputs").exists()  # hydra.run.dir was honoured


def test_a_sweep_runs_with_the_installed_sweeper_plugin(installed):
    sweep = installed["tmp"] / "sweeps" / "short"  # not under runs/, which the collect test reads
    args = ("max_iter=4", "eval_every=2", f"hydra.sweep.dir={sweep}", "-m", "seed=0,1")
    result = _script(installed, "tpri-train", *args)
    assert result.returncode == 0, result.stderr
    assert sorted(p.parent.name for p in sweep.glob("*/summary.json")) == ["0", "1"]
    again = _script(installed, "tpri-train", *args)  # the planned sweeper skips finished jobs
    assert again.returncode == 0 and "2 of 2 jobs are finished" in again.stdout + again.stderr


def test_info_shows_the_configs_come_from_the_installed_package(installed):
    result = _script(installed, "tpri-train", "--info")
    assert result.returncode == 0, result.stderr
    main = [line for line in result.stdout.splitlines() if line.startswith("| main")]
    assert len(main) == 1 and "pkg://tpri.conf" in main[0]
    assert str(ROOT) not in result.stdout


def test_tpri_is_imported_from_the_install_not_a_checkout(installed):
    code = "import importlib.util; print(importlib.util.find_spec('tpri').origin)"
    env = {**os.environ, "PYTHONPATH": str(installed["target"])}
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=installed["cwd"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert Path(result.stdout.strip()) == installed["target"] / "tpri" / "__init__.py"


def _needs(installed: dict, name: str) -> None:
    if name not in _entry_points(installed):
        pytest.skip(f"console script {name} is not declared in this wheel's entry points")


def test_collect_runs_from_another_directory(installed, run_dir):
    _needs(installed, "tpri-collect")
    result = _script(installed, "tpri-collect", str(run_dir.parent))
    assert result.returncode == 0, result.stderr
    results = pd.read_csv(run_dir.parent / "results.csv")
    assert list(results["iteration"]) == [0, 10, 20]


def test_plot_runs_from_another_directory(installed, run_dir):
    _needs(installed, "tpri-plot")
    figures = installed["tmp"] / "figures"
    result = _script(installed, "tpri-plot", "convergence", str(run_dir.parent), "--out", str(figures))
    assert result.returncode == 0, result.stderr
    assert (figures / "convergence.png").stat().st_size > 0
