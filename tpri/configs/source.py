"""Where Hydra reads tpri's configs (`tpri-train --info` shows it)."""

from __future__ import annotations

from pathlib import Path


def config_source() -> str:
    """The copy of conf/ shipped in a wheel as the package tpri.conf (`pkg://tpri.conf`), else
    the conf/ beside the package in a checkout (python train.py, editable install)."""
    package = Path(__file__).resolve().parents[1]  # tpri/
    if (package / "conf" / "config.yaml").is_file():
        return "pkg://tpri.conf"
    return str(package.parent / "conf")


CONFIG_DIR = config_source()
