"""Hydra entry point: `python train.py ...` (repo root) or the `tpri-train` console script.

Exit codes: 0 done (completed, diverged or skipped), 1 a job failed or its directory could
not be used, 2 a bad configuration or a refused rerun, 130 / 143 interrupted (SIGINT /
SIGTERM, SIGUSR2) after a checkpoint: rerunning resumes.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from tpri.config import ConfigError
from tpri.run import Interrupted, JobFailed, RunContext, RunDirError, RunRefused, run
from tpri.run.signals import mark_launcher


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


def _context() -> RunContext:
    hc = HydraConfig.get()
    sweep = hc.mode == RunMode.MULTIRUN
    return RunContext(overrides=list(hc.overrides.task),
                      hydra_yaml=OmegaConf.to_yaml(OmegaConf.create({"hydra": hc})),
                      tag=f"[job {hc.job.num}] " if sweep else "")


def _fail(message: str, code: int, sweep: bool) -> None:
    """One line on stderr; a single run exits, a sweep goes on with its other jobs."""
    print(message, file=sys.stderr)
    if not sweep:
        sys.exit(code)


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="config")
def _hydra_main(cfg: DictConfig) -> float:
    """Train one job into Hydra's output dir; returns the final train loss (for sweepers)."""
    context = _context()
    sweep = bool(context.tag)
    try:
        summary = run(cfg, HydraConfig.get().runtime.output_dir, context)
    except ConfigError as err:
        _fail(f"{context.tag}Invalid configuration: {err}", 2, sweep)
        return float("inf")
    except RunRefused as err:
        _fail(f"{context.tag}Refused: {err}", 2, sweep)
        return float("inf")
    except (RunDirError, JobFailed) as err:
        _fail(f"{context.tag}{err}", 1, sweep)
        return float("inf")
    except Interrupted as err:
        print(f"{context.tag}{err}", file=sys.stderr)
        sys.exit(err.exit_code)
    loss = (summary.get("final") or {}).get("train_loss")
    return float("inf") if loss is None or summary["status"] != "completed" else loss


def main() -> None:
    """Console entry. Hydra's argparse rejects flags between overrides, so the value-less
    flags `-m` / `--multirun` are moved to the front: `train.py a=1 -m b=1,2` works."""
    flags = [a for a in sys.argv[1:] if a in ("-m", "--multirun")]
    sys.argv[1:] = flags + [a for a in sys.argv[1:] if a not in ("-m", "--multirun")]
    mark_launcher()
    try:
        _hydra_main()
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)


if __name__ == "__main__":
    main()
