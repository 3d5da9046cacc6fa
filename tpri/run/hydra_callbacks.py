"""Hydra callbacks of the app (listed under `hydra.callbacks` in conf/config.yaml)."""

from __future__ import annotations

import sys

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from tpri.run.rundir import RunDirError, check_output_location, create_output_dir


class CheckOutputDir(Callback):
    """Before Hydra creates the output dir: one line and exit 1 when it cannot be (a file in
    the way, a read-only or unwritable location), instead of Hydra's traceback."""

    def on_run_start(self, config: DictConfig, **kwargs) -> None:
        _check(OmegaConf.select(config, "hydra.run.dir"))

    def on_multirun_start(self, config: DictConfig, **kwargs) -> None:
        _check(OmegaConf.select(config, "hydra.sweep.dir"))


def _check(path) -> None:
    """Check, then create the dir Hydra is about to create (a location can pass the check
    and still refuse a new dir: /proc, a full or special file system)."""
    try:
        check_output_location(str(path))
        create_output_dir(str(path))
    except RunDirError as err:
        print(err, file=sys.stderr)
        sys.exit(1)
