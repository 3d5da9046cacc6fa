"""The run layer: one config -> one job directory (see `loop.run`).

    from tpri.run import run, load_model
    summary = run(cfg_dict, "outputs/runs/mine")     # train, resume or skip; returns the summary
    model = load_model("outputs/runs/mine", which="best")

Modules: `loop` (the job loop and its order of events), `job` (objects built from a config),
`record` (metric rows and their files), `rundir` (lock, record, resume rules, recovery),
`signals` (clean stops), `provenance`. Every file goes through `tpri.io.write_atomic`.
"""

from tpri.run.job import Job, load_model
from tpri.run.loop import JobFailed, RunContext, run
from tpri.run.rundir import STATUSES, RunDirError, RunRefused
from tpri.run.signals import Interrupted

__all__ = [
    "run",
    "load_model",
    "Job",
    "RunContext",
    "JobFailed",
    "RunDirError",
    "RunRefused",
    "Interrupted",
    "STATUSES",
]
