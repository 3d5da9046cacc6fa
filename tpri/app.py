"""Hydra entry point: `python train.py ...` (repo root) or the `tpri-train` console script.

Exit codes: 0 done; 2 an invalid config (one line per invalid job, nothing written); 1 a job
failed while running (single run), or some jobs of a multirun did (listed at the end, the
others ran to their end).
"""

from __future__ import annotations

import logging
import math
import os
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig
from omegaconf.errors import OmegaConfBaseException

from tpri.checkpoint import save_json
from tpri.config import ConfigError, check_config, check_resources
from tpri.preflight import FailedJobs, preflight, task_config
from tpri.schema import register_configs
from tpri.train import run

CONFIG_DIR = str(Path(__file__).resolve().parent.parent / "conf")
log = logging.getLogger("tpri")


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="config")
def _hydra_main(cfg: DictConfig) -> float | str:
    """Train one job into Hydra's output dir; returns the final train loss (for sweepers),
    inf when the job diverged, and in a multirun the text 'failed: reason' when it failed
    (Optuna records such a trial as failed and goes on)."""
    out = HydraConfig.get().runtime.output_dir
    multirun = HydraConfig.get().mode == RunMode.MULTIRUN
    try:
        plain = task_config(cfg)
        check_config(plain)  # again: Optuna's trials were not checked up front
        check_resources(plain)
        summary = run(plain, out)
    except Exception as err:  # noqa: BLE001  (one line, no traceback; HYDRA_FULL_ERROR=1 shows it)
        if os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        return _failed(err, out, multirun)
    loss = summary.get("final", {}).get("train_loss")
    return math.inf if loss is None or summary["status"] != "completed" else loss


def _failed(err: Exception, out: str, multirun: bool) -> str:
    """Report a job that could not run: exit at once in a single run; in a multirun, record
    status failed (unless the job already wrote its summary) and let the other jobs go on."""
    config_error = isinstance(err, (ConfigError, OmegaConfBaseException))
    reason = str(err) if config_error else f"{type(err).__name__}: {err}"
    reason = " ".join(reason.split())
    if not multirun:
        print(f"{'Invalid configuration' if config_error else 'Error'}: {reason}", file=sys.stderr)
        sys.exit(2 if config_error else 1)
    log.error("job failed: %s", reason)
    summary = Path(out) / "summary.json"
    if not summary.exists():
        summary.parent.mkdir(parents=True, exist_ok=True)
        save_json({"status": "failed", "reason": reason, "iteration": 0}, summary)
    return f"failed: {reason}"


def _arguments(argv: list[str]) -> list[str]:
    """Hydra's argparse rejects flags between overrides, so the value-less flags `-m` /
    `--multirun` are moved to the front: `train.py a=1 -m b=1,2` works."""
    flags = [a for a in argv if a in ("-m", "--multirun")]
    return flags + [a for a in argv if a not in ("-m", "--multirun")]


def _check_command(argv: list[str]) -> None:
    """Compose and check every job the command would run; exit 2 listing the invalid ones."""
    from hydra._internal.utils import get_args_parser

    args = get_args_parser().parse_args(argv)
    other = (
        args.help
        or args.hydra_help
        or args.cfg
        or args.info
        or args.shell_completion
        or args.config_path
        or args.config_name
        or args.config_dir
        or args.experimental_rerun
    )
    if other:  # not a training command, or another config: Hydra handles it
        return
    errors = preflight(args.overrides, args.multirun, CONFIG_DIR)
    if len(errors) == 1 and not errors[0].startswith("job "):
        print(f"Invalid configuration: {errors[0]}", file=sys.stderr)
    elif errors:
        print(f"Invalid configuration: {len(errors)} invalid job(s); no job was started", file=sys.stderr)
        print("\n".join(errors), file=sys.stderr)
    if errors:
        sys.exit(2)


def main() -> None:
    """Console entry: check every job, then hand the command to Hydra; exit 1 after a
    multirun in which some jobs failed, listing them."""
    register_configs()
    sys.argv[1:] = _arguments(sys.argv[1:])
    _check_command(sys.argv[1:])
    FailedJobs.found = []
    _hydra_main()
    if FailedJobs.found:
        print(f"{len(FailedJobs.found)} job(s) failed:", file=sys.stderr)
        for line in FailedJobs.found:
            print(f"  {line}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
