"""The default sweeper of tpri (`hydra/sweeper=planned`): Hydra's basic sweeper (the same
jobs, numbers and batches) for a sweep that `tpri.run.preflight` has already composed and checked.

- It does not compose every job a second time before launching them (Hydra's
  `validate_batch_is_legal`: minutes for a sweep of hundreds of jobs); each job is composed
  once more where it runs, by the launcher.
- It does not launch the jobs whose dirs hold them finished (completed or diverged), so a
  rerun of a sweep submits only what is left; the others keep their dirs (`hydra.sweep.subdir`
  is pinned to each launched job's number).

Both only when the preflight's plan is the plan of this very sweep (`tpri.run.preflight.CHECKED`
lists the same jobs); otherwise it is Hydra's basic sweeper. Nothing heavy is imported at
module level: Hydra imports every plugin module at start-up.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from omegaconf import OmegaConf

log = logging.getLogger(__name__)

NUMBERED = "${hydra.job.num}"  # the subdir template whose jobs the preflight can locate


class PlannedSweeper(BasicSweeper):
    def sweep(self, arguments: list[str]):
        self.plan, self.finished = None, frozenset()
        try:
            return super().sweep(arguments)
        except RuntimeError as err:
            line = ended_without_result(err)
            if line is None:
                raise
            from tpri.app import resume_command

            resume = resume_command(self.config.hydra.sweep.dir)
            raise SystemExit(f"{line} ({resume})") from None  # one line on stderr, exit 1, no traceback

    def _plan(self):
        """The preflight's plan when it is this sweep's, else None (known once the sweep has
        split its jobs into batches)."""
        if self.plan is None:
            from tpri.run import preflight

            jobs = [list(job) for batch in self.overrides for job in batch]
            if preflight.CHECKED is not None and preflight.CHECKED.jobs == jobs:
                self.plan = preflight.CHECKED
                subdir = OmegaConf.to_container(self.config.hydra.sweep)["subdir"]
                self.finished = self.plan.finished if subdir == NUMBERED else frozenset()
                if self.finished:
                    log.info(
                        f"{len(self.finished)} of {len(jobs)} jobs are finished in their dirs "
                        "already: not launched again"
                    )
        return self.plan

    def _finished(self) -> frozenset[int]:
        self._plan()
        return self.finished

    def validate_batch_is_legal(self, batch: Sequence[Sequence[str]]) -> None:
        if self._plan() is None:
            super().validate_batch_is_legal(batch)

    def _batch(self, index: int) -> list[list[str]]:
        """Batch `index` without its finished jobs, each job pinned to its own dir when some
        were left out (the launchers number the jobs they are given from 0)."""
        finished = self._finished()
        start = sum(len(b) for b in self.overrides[:index])
        batch = [list(job) for job in self.overrides[index]]
        if not finished:
            return batch
        return [
            [*job, f"hydra.sweep.subdir={start + i}"]
            for i, job in enumerate(batch)
            if start + i not in finished
        ]

    def is_done(self) -> bool:
        return all(not self._batch(i) for i in range(self.batch_index, len(self.overrides)))

    def get_job_batch(self) -> Sequence[Sequence[str]]:
        while not self._batch(self.batch_index):
            self.batch_index += 1
        self.batch_index += 1
        return self._batch(self.batch_index - 1)


def ended_without_result(err: Exception) -> str | None:
    """One line for a submitit job that ended without a result (cancelled, killed, timed out
    more often than max_num_timeout allows): which job, its state or last error, what to do.
    None for any other error."""
    if type(err).__name__ not in ("UncompletedJobError", "FailedJobError"):
        return None
    text = str(err)
    job = re.search(r"^Job (\S+) \(task", text)
    state = re.search(r"\(state: ([^)]*)\)", text)
    if state:
        why = f"state {state.group(1)}"
    else:  # FailedJobError: the last line of the job's own traceback
        lines = (
            [line.strip() for line in text.split("-" * 22)[1].splitlines() if line.strip()]
            if "-" * 22 in text
            else []
        )
        why = lines[-1] if lines else text.splitlines()[0]
    name = f"job {job.group(1)}" if job else "a job"
    return (
        f"sweep stopped: {name} ended without a result ({why}); jobs still queued or running go on "
        "under the scheduler, and every job dir keeps its last checkpoint: rerun the same command "
        "to resume the unfinished jobs"
    )
