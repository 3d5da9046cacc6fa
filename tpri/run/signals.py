"""Stopping a job cleanly: every terminating signal a user, a terminal or a scheduler sends
(SIGHUP: terminal closed or ssh dropped; SIGINT: Ctrl-C; SIGQUIT: Ctrl-\\; SIGTERM: `kill`,
SLURM preemption; SIGUSR1 / SIGUSR2: SLURM's `--signal=...@...` warning; SIGXCPU / SIGXFSZ:
CPU-time and file-size limits) only raises a flag; the loop checks it between iterations,
writes a checkpoint, records status `interrupted` (naming the signal), releases the lock and
then ends the process (or hands over to a handler installed before ours, e.g. submitit's
requeue). SIGKILL cannot be caught: the next run resumes from the last checkpoint."""

from __future__ import annotations

import os
import signal
import socket
import threading
import time
from collections.abc import Callable

STOP_SIGNALS = tuple(
    getattr(signal, name)
    for name in ("SIGHUP", "SIGINT", "SIGQUIT", "SIGTERM", "SIGUSR1", "SIGUSR2", "SIGXCPU", "SIGXFSZ")
    if hasattr(signal, name)
)
# exit code of a job stopped by each signal: the shell's 128 + its number, except SIGUSR2
# (SLURM's warning), which exits as SIGTERM does (143: a batch script requeues on it)
EXIT_CODES = {**{signum: 128 + signum for signum in STOP_SIGNALS}, signal.SIGUSR2: 143}
LAUNCHER_ENV = "TPRI_LAUNCHER"  # "PID HOST" of the process that launched the jobs


class Interrupted(Exception):
    """The job was stopped by a signal after writing its checkpoint."""

    def __init__(self, signum: int, message: str):
        super().__init__(message)
        self.signum, self.exit_code = signum, EXIT_CODES.get(signum, 128 + signum)


class SignalCatcher:
    """Within `with SignalCatcher() as stop:`, the signals of EXIT_CODES set `stop.received`."""

    def __init__(self):
        self.received: int | None = None
        self._previous: dict[int, object] = {}

    def __enter__(self) -> SignalCatcher:
        if threading.current_thread() is threading.main_thread():
            for signum in EXIT_CODES:
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()

    def _handle(self, signum, frame) -> None:
        self.received = self.received or signum

    def stop(self, message: str) -> None:
        """After the job recorded its interruption: let a previous Python handler (submitit's
        checkpoint-and-requeue) act, else raise Interrupted."""
        signum = self.received
        previous = self._previous.get(signum)
        self.__exit__()
        if callable(previous) and previous is not signal.default_int_handler:
            previous(signum, None)
        raise Interrupted(signum, message)


SCHEDULER_JOB_ENV = "SLURM_JOB_ID"  # set in every process of a SLURM job
WARNING_SIGNAL = signal.SIGUSR2  # SLURM's warning before a time limit (--signal=USR2@...)


def ignore_stray_warnings() -> None:
    """SIGUSR2 only warns of a coming time limit, but its default action ends the process:
    outside a job's training (Python starting, data loading, or after the job has ended and
    recorded its status) it is ignored. While a job trains, SignalCatcher handles it."""
    signal.signal(WARNING_SIGNAL, signal.SIG_IGN)


def mark_launcher() -> None:
    """Called by the process that launches jobs: its children can tell when it died.
    Records its pid, host and, inside a SLURM job, that job's id."""
    os.environ[LAUNCHER_ENV] = " ".join(
        [str(os.getpid()), socket.gethostname(), os.environ.get(SCHEDULER_JOB_ENV, "-")]
    )


def launcher_gone() -> str | None:
    """A message when this process runs jobs for a launcher on this host (joblib worker, local
    submitit or Ray, within the launcher's own SLURM allocation if any) that has died; None
    otherwise. A job that a scheduler owns (a SLURM job other than the launcher's) outlives
    the process that submitted it: never stopped here."""
    parts = os.environ.get(LAUNCHER_ENV, "").split()
    if len(parts) not in (2, 3) or not parts[0].isdigit() or parts[1] != socket.gethostname():
        return None
    launcher_job = parts[2] if len(parts) == 3 else "-"
    own_job = os.environ.get(SCHEDULER_JOB_ENV, "-")
    if own_job != "-" and own_job != launcher_job:
        return None
    pid = int(parts[0])
    if pid == os.getpid():
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return f"the launching process {pid} died"
    except PermissionError:
        pass
    return None


def _launcher() -> tuple[int, str] | None:
    parts = os.environ.get(LAUNCHER_ENV, "").split()
    if len(parts) != 2 or not parts[0].isdigit():
        return None
    return int(parts[0]), parts[1]


def in_worker() -> bool:
    """Whether this process runs jobs for a launcher in another process (a joblib worker,
    a submitit job): its terminal output is shared, so it draws no progress bar."""
    launcher = _launcher()
    return launcher is not None and launcher != (os.getpid(), socket.gethostname())


_watching: list[threading.Thread] = []


def exit_with_launcher(busy: Callable[[], bool], period: float = 1.0) -> None:
    """In a worker: a thread that ends this process once its launcher died and it runs no
    job (`busy()` False); a running job stops by itself at its next evaluation. Idle joblib
    workers (~0.5 GB each) would otherwise outlive a killed sweep by minutes."""
    if _watching or not in_worker():
        return

    def watch() -> None:
        while True:
            time.sleep(period)
            if not busy() and launcher_gone():
                os._exit(0)

    thread = threading.Thread(target=watch, name="tpri-launcher-watch", daemon=True)
    _watching.append(thread)
    thread.start()
