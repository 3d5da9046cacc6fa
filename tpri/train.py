"""Kept for old imports: the training loop lives in `tpri.run`."""

from tpri.run import Job, run

__all__ = ["Job", "run"]
