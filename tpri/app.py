"""Hydra entry point: `python train.py ...` (repo root) or the `tpri-train` console script."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from tpri.config import ConfigError
from tpri.train import run


def config_source() -> str:
    """Where Hydra reads the configs (`tpri-train --info` shows it): the copy of conf/ shipped in a
    wheel as the package tpri.conf, else the conf/ beside this package in a checkout (python
    train.py, editable install)."""
    here = Path(__file__).resolve().parent
    if (here / "conf" / "config.yaml").is_file():
        return "pkg://tpri.conf"
    return str(here.parent / "conf")


CONFIG_DIR = config_source()
# Hydra's root logger is at INFO: alembic (imported by Optuna's sweeper, run by MLflow's store)
# would print "setup plugin ..." / migration lines.
logging.getLogger("alembic").setLevel(logging.WARNING)


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="config")
def _hydra_main(cfg: DictConfig) -> float:
    """Train one job into Hydra's output dir; returns the final train loss (for sweepers)."""
    try:
        summary = run(cfg, HydraConfig.get().runtime.output_dir)
    except ConfigError as err:  # one clear message, no traceback
        print(f"Invalid configuration: {err}", file=sys.stderr)
        sys.exit(2)
    loss = summary.get("final", {}).get("train_loss")
    return float("inf") if loss is None or summary["status"] != "completed" else loss


def main() -> None:
    """Console entry. Hydra's argparse rejects flags between overrides, so the value-less
    flags `-m` / `--multirun` are moved to the front: `train.py a=1 -m b=1,2` works."""
    flags = [a for a in sys.argv[1:] if a in ("-m", "--multirun")]
    sys.argv[1:] = flags + [a for a in sys.argv[1:] if a not in ("-m", "--multirun")]
    _hydra_main()


if __name__ == "__main__":
    main()
