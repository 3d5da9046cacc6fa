"""Every shell command of the README's ```bash blocks is either run here at a small budget or
skipped for a reason listed in SKIPPED; a command in neither fails the quick test, so that a new
README command gets classified."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import ROOT

SMALL = ["max_iter=4", "eval_every=2"]  # appended to every train.py command
BENCH_SMALL = ["--iters", "2", "--T", "12", "--hidden", "8", "--batch", "2"]

# command prefix -> why it is not run by the test
SKIPPED = {
    "make ": "set-up: creates a venv and installs packages (measured by hand, README quick start)",
    "source ": "set-up: activates the venv in the user's shell",
    "pip install": "set-up: installs packages",
    "python -m pytest": "the test suite itself",
    "tensorboard ": "tracker UI: a server that runs until stopped",
    "mlflow ui": "tracker UI: a server that runs until stopped",
    "srun ": "cluster: needs SLURM",
    "[ $? -eq 143 ]": "cluster: needs SLURM",
    "code=$?": "cluster: the SLURM script's requeue logic",
    "if [ ": "cluster: the SLURM script's requeue logic",
    "scontrol ": "cluster: needs SLURM",
    "fi": "cluster: the SLURM script's requeue logic",
    "exit ": "cluster: the SLURM script's requeue logic",
    "sbatch ": "cluster: needs SLURM",
    "python train.py sweep=heatmap hydra/launcher=": "cluster: a SLURM or Ray launcher (test_cluster.py)",
    "ray ": "cluster: starts or stops a Ray cluster",
    "scripts/make_figures.sh": "every smoke sweep (minutes); run by tests/test_pipeline.py's figure checks",
    "python scripts/benchmark.py --winner": "allocates about 3 GB per process (the paper's winner corner)",
    "python train.py dataset=mnist": "downloads MNIST (network)",
    "tpri-plot report outputs/figures": "needs the figures of scripts/make_figures.sh",
}
MODULES = {
    "tpri-status": "tpri.run.status",
    "tpri-plot": "tpri.analysis.figures",
}  # console scripts, run as modules (no install needed)
TEMPLATE = re.compile(r"\b(NAME|KIND|DIR)\b")  # placeholders, e.g. sweep=NAME: not a command


def readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", text, re.S):
        for line in block.replace("\\\n", " ").splitlines():  # continuation lines joined
            if line.strip() and not line.lstrip().startswith("#"):
                shell = "$" in line  # variables: kept as written
                commands.append(line.strip() if shell else " ".join(shlex.split(line, comments=True)))
    return commands


def skip_reason(command: str) -> str | None:
    if TEMPLATE.search(command):
        return "a template (NAME, KIND, DIR stand for a sweep, a plot kind, a dir)"
    return next((why for prefix, why in SKIPPED.items() if command.startswith(prefix)), None)


def argv(command: str, tmp: Path) -> list[str]:
    """The command as run by the test: this interpreter, the checkout's scripts, a small budget."""
    words = shlex.split(command)
    if words[0] in MODULES:
        return [sys.executable, "-m", MODULES[words[0]], *words[1:]]
    assert words[0] == "python", command
    script = ROOT / words[1]
    args = words[2:]
    if words[1] == "train.py":
        args += [] if "--dry-run" in args or "--resume" in args else SMALL
    elif words[1] == "scripts/benchmark.py":
        args += [*BENCH_SMALL, "--out", str(tmp / "outputs/benchmark/benchmark.csv")]
    return [sys.executable, str(script), *args]


def test_every_readme_command_is_run_or_skipped_for_a_listed_reason():
    commands = readme_commands()
    assert len(commands) > 20
    for command in commands:
        if skip_reason(command) is None and command.split()[0] not in MODULES:
            assert command.startswith("python "), f"README command neither run nor skipped: {command}"
            assert (ROOT / shlex.split(command)[1]).is_file(), command


@pytest.mark.slow
def test_the_readme_commands_run_at_a_small_budget(tmp_path):
    env = {**os.environ, "HYDRA_FULL_ERROR": "0", "MPLBACKEND": "Agg", "PYTHONPATH": str(ROOT)}
    ran = []
    for command in readme_commands():
        if skip_reason(command):
            continue
        proc = subprocess.run(
            argv(command, tmp_path), cwd=tmp_path, capture_output=True, text=True, env=env, timeout=600
        )
        assert proc.returncode == 0, f"{command}\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"
        assert "Traceback" not in proc.stderr, command
        ran.append(command)
    assert "python train.py" in ran and len(ran) >= 15
