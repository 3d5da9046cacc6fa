"""Analysis commands in any state of the files: damaged job files are skipped with a warning,
a read-only runs dir or a full disk gives one line and keeps the previous outputs whole."""

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from fakeruns import write_job
from helpers import as_nobody, can_drop_privileges

from tpri.analysis.figures.cli import collect_main

COLLECT = (
    "import sys; from tpri.analysis.figures.cli import collect_main; sys.exit(collect_main(sys.argv[1:]))"
)
PLOT = "import sys; from tpri.analysis.figures.cli import plot_main; sys.exit(plot_main(sys.argv[1:]))"


def _damage(job: Path, how: str) -> None:
    if how == "non-UTF-8 metrics.csv":
        (job / "metrics.csv").write_bytes((job / "metrics.csv").read_bytes() + b"1200,\xff\xfe,0.1\n")
    elif how == "metrics.csv is a directory":
        (job / "metrics.csv").unlink()
        (job / "metrics.csv").mkdir()
    else:
        (job / "summary.json").unlink()
        (job / "summary.json").mkdir()


@pytest.mark.parametrize(
    "how, reason",
    [
        ("non-UTF-8 metrics.csv", "metrics.csv is not UTF-8 text"),
        ("metrics.csv is a directory", "metrics.csv is not a file"),
        ("summary.json is a directory", "summary.json is not a file"),
    ],
)
def test_a_damaged_job_file_is_skipped_with_a_warning(tmp_path, capsys, how, reason):
    for name in ("0", "1"):
        write_job(tmp_path / name)
    _damage(tmp_path / "1", how)
    assert collect_main([str(tmp_path)]) == 0
    out, err = capsys.readouterr()
    assert out.strip().startswith("1 jobs (1 completed)")
    assert f"{tmp_path / '1'} ({reason}" in err and "Traceback" not in err


@pytest.fixture
def shared_dir():
    """A folder nobody can read (pytest's tmp dirs are root's only); removed afterwards."""
    folder = Path(tempfile.mkdtemp(prefix="tpri-shared-"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder)


@pytest.mark.skipif(not can_drop_privileges(), reason="needs root and setpriv")
def test_collect_on_a_read_only_runs_dir_says_use_out(shared_dir):
    runs, out = shared_dir / "runs", shared_dir / "mine"
    write_job(runs / "0")
    out.mkdir()
    out.chmod(0o777)
    proc = as_nobody([sys.executable, "-c", COLLECT, str(runs)])
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    (line,) = proc.stderr.splitlines()
    assert line == (
        f"tpri-collect: error: {runs}/results.csv: cannot write here (Permission denied); "
        "use --out to write elsewhere"
    )
    assert not (runs / "results.csv").exists()
    proc = as_nobody([sys.executable, "-c", COLLECT, str(runs), "--out", str(out / "results.csv")])
    assert proc.returncode == 0, proc.stderr
    assert (out / "results.csv").read_text().startswith("job_dir,")


def _in_a_small_tmpfs(script: str) -> subprocess.CompletedProcess:
    """Run a shell script in a private mount namespace where /mnt is a 1 MiB tmpfs."""
    return subprocess.run(
        ["unshare", "-m", "sh", "-c", f"mount -t tmpfs -o size=1m tmpfs /mnt && {script}"],
        capture_output=True,
        text=True,
        timeout=300,
    )


def _have_tmpfs() -> bool:
    return bool(shutil.which("unshare")) and _in_a_small_tmpfs("true").returncode == 0


@pytest.mark.slow  # six processes importing pandas and matplotlib
@pytest.mark.skipif(not _have_tmpfs(), reason="needs unshare and mount (root)")
def test_on_a_full_disk_the_previous_table_and_figure_stay_whole(tmp_path):
    for name in ("0", "1"):
        write_job(tmp_path / "runs" / name)
    script = f"""
cp -r {tmp_path}/runs /mnt/runs
{sys.executable} -c '{COLLECT}' /mnt/runs > /dev/null || exit 9
cp /mnt/runs/results.csv {tmp_path}/before.csv
{sys.executable} -c '{PLOT}' \
    convergence /mnt/runs > /dev/null || exit 8
cp /mnt/runs/convergence.png {tmp_path}/before.png
head -c 2000000 /dev/zero > /mnt/filler 2>/dev/null
echo 'extra' > /mnt/runs/0/.hydra/extra 2>/dev/null
{sys.executable} -c '{COLLECT}' /mnt/runs; echo "collect=$?"
{sys.executable} -c '{PLOT}' \
    convergence /mnt/runs; echo "plot=$?"
cmp /mnt/runs/results.csv {tmp_path}/before.csv && cmp /mnt/runs/convergence.png {tmp_path}/before.png \
    && echo same
ls -a /mnt/runs
"""
    proc = _in_a_small_tmpfs(script)
    lines = proc.stdout.splitlines() + proc.stderr.splitlines()
    assert "collect=1" in lines and "plot=1" in lines and "same" in lines, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if "error:" in line]
    assert len(errors) == 2 and all("cannot write here (No space left on device)" in e for e in errors)
    assert not any(name.endswith(".tmp") for name in lines)  # no temp file left behind


def test_a_closed_stdout_prints_no_traceback_and_the_job_completes(tmp_path):
    """`python train.py ... | head -1`: the reader goes after one line."""
    import json
    import os

    from helpers import ROOT, TINY

    out = tmp_path / "run"
    command = [sys.executable, str(ROOT / "train.py"), *TINY, "max_iter=400", "eval_every=50"]
    proc = subprocess.Popen(
        [*command, f"hydra.run.dir={out}"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    proc.stdout.readline()
    proc.stdout.close()  # as `head -1` does
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=600) == 0
    assert err == ""
    assert json.loads((out / "summary.json").read_text())["status"] == "completed"


@pytest.mark.parametrize("locale", ["C", "C.UTF-8"])
def test_a_non_ascii_run_dir_works_under_any_locale(tmp_path, monkeypatch, locale):
    import json

    from helpers import TINY, train_cli

    from tpri.app import quote_non_ascii

    assert quote_non_ascii("lr=0.1,0.2") == "lr=0.1,0.2" and quote_non_ascii("a='ü'") == "a='ü'"
    monkeypatch.setenv("LC_ALL", locale)
    out = tmp_path / "résultats ü" / "run"
    train_cli(*TINY, "max_iter=10", "eval_every=10", f"hydra.run.dir={out}")
    assert json.loads((out / "summary.json").read_text())["status"] == "completed"


def test_make_figures_outside_the_venv_finds_its_python_or_says_what_to_do(tmp_path):
    from helpers import ROOT

    script = str(ROOT / "scripts" / "make_figures.sh")
    bare = {"PATH": "/usr/bin:/bin", "PYTHON": str(tmp_path / "no-python")}
    proc = subprocess.run(["bash", script, "smoke"], env=bare, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [
        f"{script}: no python with tpri installed; activate its venv (source .venv/bin/activate), "
        "run 'make setup', or set PYTHON=/path/to/python"
    ]
    given = {"PATH": "/usr/bin:/bin", "PYTHON": sys.executable, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(["bash", script, "bogus"], env=given, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and proc.stderr.startswith("usage: ")  # got past the python check


def test_without_a_home_directory_the_data_dir_says_what_to_set(tmp_path, monkeypatch, capsys):
    """HOME unset and a user the passwd database does not know (os.path.expanduser's fallback)."""
    import pwd

    from tpri.app import main

    def unknown(uid):
        raise KeyError(uid)

    monkeypatch.delenv("HOME", raising=False)
    monkeypatch.delenv("TPRI_DATA", raising=False)
    monkeypatch.setattr(pwd, "getpwuid", unknown)
    monkeypatch.setattr(sys, "argv", ["train.py", "dataset=mnist", f"hydra.run.dir={tmp_path}/run"])
    with pytest.raises(SystemExit) as code:
        main()
    assert code.value.code == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.endswith(
        "dataset.data_dir=~/.cache/tpri/mnist: no home directory to expand '~' to (HOME is unset); "
        "set TPRI_DATA=/path/to/data or dataset.data_dir=/path/to/data"
    )
    assert not (tmp_path / "run").exists() and not Path("~").exists()


def test_a_users_metrics_csv_in_a_dir_without_a_tpri_run_is_not_overwritten(tmp_path):
    from helpers import TINY, train_cli

    out = tmp_path / "mine"
    out.mkdir()
    (out / "metrics.csv").write_text("my,own\n1,2\n")
    proc = train_cli(*TINY, "max_iter=10", "eval_every=10", f"hydra.run.dir={out}", check=False)
    assert proc.returncode == 2
    (line,) = proc.stderr.strip().splitlines()
    assert line == (
        f"Refused: {out} holds files that are not a tpri run's (metrics.csv: "
        "no .hydra/config.yaml, summary.json or checkpoint.pt); nothing was changed. Use another output dir"
    )
    assert (out / "metrics.csv").read_text() == "my,own\n1,2\n"
    assert not (out / "summary.json").exists() and not (out / ".hydra").exists()
