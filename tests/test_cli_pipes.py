"""A reader that leaves the pipe (`tpri-collect DIR | head -0`, `tpri-status | head`) ends the
command quietly, as a pipe's writer does (status 141), with no traceback and no error line
blaming the folder; what the command wrote before printing stays whole."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from fakeruns import write_job
from helpers import ROOT

COMMANDS = {
    "tpri-collect": "from tpri.analysis.figures.cli import collect_main as main",
    "tpri-status": "from tpri.run.status import main",
    "tpri-plot": "from tpri.analysis.figures.cli import plot_main as main",
}
ARGS = {"tpri-collect": [], "tpri-status": [], "tpri-plot": ["sweeps"]}


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_a_reader_that_leaves_the_pipe_ends_the_command_quietly(tmp_path, command):
    write_job(tmp_path / "runs" / "a")
    target = (
        [str(tmp_path / "runs")]
        if command != "tpri-plot"
        else [str(ROOT / "conf" / "sweep" / "heatmap_smoke.yaml")]
    )
    code = f"import sys; {COMMANDS[command]}; sys.exit(main(sys.argv[1:]))"
    read, write = os.pipe()
    os.close(read)  # nobody will read what it prints
    try:
        proc = subprocess.run(
            [sys.executable, "-c", code, *ARGS[command], *target],
            stdout=write,
            stderr=subprocess.PIPE,
            text=True,
        )
    finally:
        os.close(write)
    assert (proc.returncode, proc.stderr) == (141, "")
    if command == "tpri-collect":
        assert (tmp_path / "runs" / "results.csv").is_file()  # written before the line was printed
