"""The package layout is its architecture: every import points down the layers, no module
imports another in a circle, and no private name crosses a module (README, Layout)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "tpri"
# lowest first; a module may import its own layer's modules and any layer below
LAYERS = [
    ("foundation", ("tpri.io", "tpri.cli", "tpri.spec")),
    ("algorithm", ("tpri.algorithm",)),
    ("data", ("tpri.data",)),
    ("configs", ("tpri.configs",)),
    ("run", ("tpri.run",)),
    ("api", ("tpri",)),  # the public API facade re-exports algorithm, data and run
    ("analysis", ("tpri.analysis",)),
    ("app", ("tpri.app",)),
]
PEERS = {frozenset({"algorithm", "data"})}  # neither imports the other


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py")) if "conf" not in p.parts}


def layer(module: str) -> tuple[int, str]:
    """(rank, name) of the most specific layer prefix of `module`."""
    best = max(
        (
            (len(prefix), rank, name)
            for rank, (name, prefixes) in enumerate(LAYERS)
            for prefix in prefixes
            if module == prefix or module.startswith(prefix + ".")
        ),
    )
    return best[1], best[2]


def imports(module: str) -> list[tuple[str, list[str]]]:
    """(imported tpri module, names taken from it) for every import in `module`, lazy ones too."""
    found = []
    for node in ast.walk(ast.parse(MODULES[module].read_text())):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith("tpri"):
            names = [a.name for a in node.names]
            submodules = [f"{node.module}.{n}" for n in names if f"{node.module}.{n}" in MODULES]
            found += [(m, []) for m in submodules] or [(node.module, names)]
        elif isinstance(node, ast.Import):
            found += [(a.name, []) for a in node.names if a.name.split(".")[0] == "tpri"]
    return found


def edges() -> dict[str, set[str]]:
    return {m: {target for target, _ in imports(m) if target != m} for m in MODULES}


def test_every_module_sits_in_a_layer():
    assert all(layer(m) for m in MODULES)
    assert {name for name, _ in LAYERS} <= {layer(m)[1] for m in MODULES}
    flat = sorted(m for m, p in MODULES.items() if p.parent == PACKAGE and p.name != "__init__.py")
    assert flat == ["tpri.app", "tpri.cli", "tpri.io", "tpri.spec"], "a new flat module: put it in its layer"


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_point_down(module):
    rank, name = layer(module)
    for target in edges()[module]:
        if target.startswith(module + "."):
            continue  # a package's __init__ re-exporting its own modules
        target_rank, target_name = layer(target)
        assert target_rank <= rank, f"{module} ({name}) imports {target} ({target_name}), a layer above"
        assert frozenset({name, target_name}) not in PEERS, f"{module} imports its peer layer: {target}"


def test_no_circles():
    graph = edges()
    state: dict[str, int] = {}  # 1 on the path, 2 done

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if nxt.startswith(node + ".") or nxt not in graph:
                continue
            assert state.get(nxt) != 1, "import circle: " + " -> ".join([*path, node, nxt])
            if nxt not in state:
                visit(nxt, [*path, node])
        state[node] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [])


def test_no_private_name_crosses_a_module():
    crossing = [
        f"{module} imports {name} from {target}"
        for module in MODULES
        for target, names in imports(module)
        for name in names
        if name.startswith("_") and target != module
    ]
    assert crossing == []


def test_checks_see_a_circle_and_an_upward_import(tmp_path, monkeypatch):
    """The checks above can fail: a fake algorithm module importing the run layer is caught."""
    fake = {"tpri.algorithm.fake": tmp_path / "fake.py", "tpri.run.fake2": tmp_path / "fake2.py"}
    fake["tpri.algorithm.fake"].write_text("from tpri.run import fake2\n")
    fake["tpri.run.fake2"].write_text("from tpri.algorithm import fake\n")
    monkeypatch.setattr(f"{__name__}.MODULES", {**MODULES, **fake})
    with pytest.raises(AssertionError, match="a layer above"):
        test_imports_point_down("tpri.algorithm.fake")
    with pytest.raises(AssertionError, match="import circle: tpri.algorithm.fake -> tpri.run.fake2"):
        test_no_circles()


def dataset_switches(module: str, names: set[str]) -> list[int]:
    """Lines where `module` compares with, or keys a dict by, a dataset's name written as a literal."""

    def literals(node) -> set[str]:
        items = node.elts if isinstance(node, (ast.Tuple, ast.List, ast.Set)) else [node]
        return {i.value for i in items if isinstance(i, ast.Constant) and isinstance(i.value, str)}

    lines = []
    for node in ast.walk(ast.parse(MODULES[module].read_text())):
        if isinstance(node, ast.Compare):
            found = set().union(*(literals(n) for n in [node.left, *node.comparators]))
        elif isinstance(node, ast.Dict):
            found = set().union(*(literals(k) for k in node.keys if k is not None))
        elif isinstance(node, ast.MatchValue):
            found = literals(node.value)
        else:
            continue
        lines += [node.lineno] if found & names else []
    return lines


def test_only_the_data_package_and_the_paper_settings_switch_on_a_dataset_name():
    """A dataset's facts live in its Task class; the one exception is the table of the authors'
    values per experiment (configs/paper_settings.py)."""
    from tpri.data import TASKS

    switching = {
        m: lines
        for m in MODULES
        if not (m == "tpri.data" or m.startswith("tpri.data."))
        for lines in [dataset_switches(m, set(TASKS))]
        if lines
    }
    assert set(switching) <= {"tpri.configs.paper_settings"}, switching


def test_the_dataset_switch_check_sees_a_switch(tmp_path, monkeypatch):
    fake = tmp_path / "fake.py"
    fake.write_text('def f(name):\n    sizes = {"ptb": 1}\n    return name in ("mnist", "x") or sizes\n')
    monkeypatch.setitem(MODULES, "tpri.run.fake", fake)
    assert dataset_switches("tpri.run.fake", {"mnist", "ptb"}) == [2, 3]
    with pytest.raises(AssertionError, match="tpri.run.fake"):
        test_only_the_data_package_and_the_paper_settings_switch_on_a_dataset_name()
