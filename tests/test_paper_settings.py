"""The authors' settings (tpri/configs/paper_settings.py) against what the configs compose to, and the
generated table docs/paper-settings.md."""

from pathlib import Path

import pytest

from tpri.configs import paper_settings
from tpri.configs.paper_settings import Entry, compare

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def built():
    return paper_settings.build()


def test_every_config_matches_the_authors_or_names_its_deviation(built):
    _, problems = built
    assert problems == []


def test_the_committed_table_is_the_generated_one(built):
    text, _ = built
    committed = (ROOT / paper_settings.TABLE).read_text()
    assert committed == text, "docs/paper-settings.md is stale: run python -m tpri.configs.paper_settings"


def test_every_experiment_and_paper_sweep_has_an_entry():
    covered = {entry.overrides[0] for entry in paper_settings.entries()}
    experiments = {f"experiment={p.stem}" for p in (ROOT / "conf" / "experiment").glob("*.yaml")}
    sweeps = {
        f"sweep={p.stem}"
        for p in (ROOT / "conf" / "sweep").glob("*.yaml")
        if not p.stem.endswith("_smoke") and p.stem not in paper_settings.OWN_SWEEPS
    }
    assert experiments | sweeps <= covered, sorted((experiments | sweeps) - covered)


def test_compare_flags_a_drift_and_a_deviation_that_no_longer_differs():
    entry = Entry(
        "x", "a figure", ("experiment=x",), {"lr": 0.1, "reg": 1.0, "sweep.seed": [1]}, {"reg": "why"}
    )
    assert compare(entry, {"lr": 0.1, "reg": 10.0, "sweep.seed": [1]}) == []
    drift = compare(entry, {"lr": 0.2, "reg": 10.0, "sweep.seed": [1]})
    assert drift == ["x: lr is 0.2, the authors' 0.1, no deviation named"]
    fixed = compare(entry, {"lr": 0.1, "reg": 1.0, "sweep.seed": [0, 1, 2]})
    assert fixed[0] == "x: reg equals the authors' 1.0 but is named a deviation"
    assert "sweep.seed is [0, 1, 2]" in fixed[1]


def test_values_compare_as_numbers_lists_and_types():
    assert paper_settings.same(1e-4, 0.0001) and paper_settings.same(10, 10.0)
    assert paper_settings.same([1e-3, 1e-2], [0.01, 0.001]) and not paper_settings.same([1], [1, 2])
    assert not paper_settings.same(True, 1) and not paper_settings.same(None, 0)
