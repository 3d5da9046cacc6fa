"""The run directory: one writer at a time, the job's own record, and recovery of damaged files.

    <job dir>/
      run.lock          exclusive OS lock held for the life of the job (holds "PID HOST")
      .hydra/           the job's record, written by the job once its config is accepted:
                        config.yaml (resolved), overrides.yaml, hydra.yaml (when run by Hydra)
      summary.json      status, reason, final/best metrics, provenance
      metrics.csv       one row per evaluation (gradients.csv with log_gradients)
      checkpoint.pt     resumable state (+ status once the job finished): `Checkpoint`;
                        best.pt: best weights

The rules of resuming live here too: which keys may change between a run and its resumption,
when a finished job is skipped, and what an unreadable file turns into.
"""

from __future__ import annotations

import dataclasses
import errno
import fcntl
import json
import logging
import os
import re
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tpri import io

log = logging.getLogger("tpri")

LOCK, RECORD = "run.lock", ".hydra"
SUMMARY, METRICS, GRADIENTS = "summary.json", "metrics.csv", "gradients.csv"
CHECKPOINT, BEST = "checkpoint.pt", "best.pt"
STATUSES = ("running", "completed", "diverged", "failed", "interrupted")
# keys that may change between a run and its resumption: they do not alter the trajectory
RESUMABLE_KEYS = ("max_iter", "checkpoint_every", "threads", "device", "logger", "restart")
RECORD_FILES = ("config.yaml", "overrides.yaml", "hydra.yaml")
OWN_FILES = (SUMMARY, METRICS, GRADIENTS, CHECKPOINT, BEST)
CHECKPOINT_KEYS = (
    "model",
    "optimizer",
    "generator",
    "torch_rng",
    "config",
    "iteration",
    "metrics",
    "gradients",
    "train_time",
)
FINAL_KEYS = ("status", "reason", "summary")  # in a checkpoint once the job has ended


@dataclass
class Checkpoint:
    """The one resumable state of a job, what `checkpoint.pt` holds (on disk a plain dict of
    tensors and plain data, `state()`). Validated once, when read (`from_state`); the session
    writes it, the job (weights, optimizer, random streams: `Job.load`), the record (rows,
    iteration, train time: `Record.restore`), the session (best weights, earlier stretches) and
    recovery (`reconcile`, a finished job's summary) read its fields."""

    model: dict  # the model's state dict
    model_options: dict | None  # how to build the model (`tpri.load_model`); None in old files
    optimizer: dict  # the torch optimizer's state dict
    generator: Any  # the batch generator's state (a uint8 tensor)
    torch_rng: Any  # torch's global random state
    config: dict  # the trajectory config (`trajectory_config`)
    direction: dict | None  # the update direction's state (DTP's); {} or None (tpri 0.1.0): none
    iteration: int  # iterations done
    metrics: list[dict]  # metrics.csv's rows
    gradients: list[dict]  # gradients.csv's rows
    train_time: float  # seconds of training so far
    best: dict | None = None  # best.pt's content (weights, iteration, metric)
    stretches: list[dict] | None = None  # the processes that trained it (None: tpri 0.1.0)
    status: str | None = None  # once the job has ended: one of STATUSES, with its reason
    reason: str | None = None
    summary: dict | None = None  # the final summary, to rebuild summary.json from
    task: dict | None = None  # the task's stream state (PTB's in-order cursor); {} or None: none

    @classmethod
    def from_state(cls, state) -> Checkpoint | None:
        """The checkpoint a loaded file holds; None when it is not one (wrong structure)."""
        if not _valid_checkpoint(state):
            return None
        return cls(**{f.name: state.get(f.name) for f in dataclasses.fields(cls)})

    def state(self) -> dict:
        """What is saved: every field; the final ones only once the job has ended."""
        names = [f.name for f in dataclasses.fields(self)]
        return {n: getattr(self, n) for n in names if n not in FINAL_KEYS or self.status is not None}

    @property
    def ended(self) -> bool:
        """The job had ended (completed, diverged, failed, interrupted) when it was written."""
        return self.status in STATUSES


class RunDirError(Exception):
    """The run directory cannot be used (busy, unwritable, not a directory); nothing changed."""


class RunRefused(RunDirError):
    """The directory holds a different run; nothing changed."""


def trajectory_config(cfg: dict) -> dict:
    """The part of the config that determines the training trajectory."""
    return json.loads(json.dumps({k: v for k, v in cfg.items() if k not in RESUMABLE_KEYS}))


def check_output_location(path: str | Path) -> None:
    """Raise RunDirError unless `path` is, or can be created as, a writable directory
    (checked without creating anything)."""
    path = Path(path).absolute()
    for folder in (path, *path.parents):
        if folder.is_symlink() and not folder.exists():
            raise RunDirError(f"cannot use output dir {path}: {folder} is a dangling symbolic link")
        if folder.exists():
            break
    if not folder.is_dir():
        raise RunDirError(f"cannot use output dir {path}: {folder} is not a directory")
    if not os.access(folder, os.W_OK | os.X_OK):
        problem = "a read-only file system" if _read_only_fs(folder) else "not writable"
        raise RunDirError(f"cannot use output dir {path}: {folder} is {problem}")
    log_file = path / "train.log"
    if log_file.exists() and not os.access(log_file, os.W_OK):
        raise RunDirError(f"cannot use output dir {path}: {log_file} is not writable")


def create_output_dir(path: str | Path) -> None:
    """Create the output dir `path` (and its parents); RunDirError naming it when that fails."""
    path = Path(path).absolute()
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise RunDirError(f"cannot create output dir {path}: {_os_message(err, path)}") from None


def _read_only_fs(folder: Path) -> bool:
    return bool(os.statvfs(folder).f_flag & os.ST_RDONLY)


def _os_message(err: OSError, path: Path) -> str:
    return f"{err.filename or path}: {err.strerror or err}"


@dataclass
class Previous:
    """What an earlier run left in the directory (after recovery)."""

    summary: dict | None = None  # None: absent or unreadable
    checkpoint: Checkpoint | None = None
    record: dict | None = None  # .hydra/config.yaml
    notes: list[str] = field(default_factory=list)  # damage found, one line each
    damaged_checkpoint: bool = False  # to be moved aside once the new run is accepted

    @property
    def config(self) -> dict | None:
        if self.checkpoint:
            return self.checkpoint.config
        if self.summary and isinstance(self.summary.get("config"), dict):
            return self.summary["config"]
        return trajectory_config(self.record) if self.record else None

    @property
    def status(self) -> str | None:
        if self.checkpoint and self.checkpoint.ended:
            final = self.checkpoint.status
            if not self.summary or self.summary.get("status") != final:
                return final  # the summary is missing, unreadable or older than the checkpoint
        return self.summary.get("status") if self.summary else None

    @property
    def iteration(self) -> int:
        if self.checkpoint and self.checkpoint.ended:
            return self.checkpoint.iteration
        return (self.summary or {}).get("iteration", 0)

    @property
    def saved_iteration(self) -> int | None:
        """The iteration of the last checkpoint the run wrote, as its summary says (summaries
        of tpri 0.1.0: a completed or interrupted run wrote one where it stopped)."""
        summary = self.summary or {}
        if "checkpoint_iteration" in summary:
            return summary["checkpoint_iteration"]
        return summary.get("iteration") if summary.get("status") in ("completed", "interrupted") else None

    def finished(self, max_iter: int) -> bool:
        """Completed up to max_iter, or diverged: nothing left to train."""
        return self.status == "diverged" or (self.status == "completed" and self.iteration >= max_iter)


class RunDir:
    """One job directory, locked for the life of the job (use as a context manager)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._lock_fd: int | None = None
        self._dir_fd: int | None = None

    # --- lock ----------------------------------------------------------------------------
    def __enter__(self) -> RunDir:
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()

    def acquire(self) -> None:
        """Create the dir if needed and take its exclusive locks, or raise RunDirError: the
        directory's own lock (a file someone deletes by hand cannot undo it), then `run.lock`'s
        (which tells a second process who holds the dir)."""
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            self._dir_fd = self._lock_dir()
            while self._lock_fd is None:
                self._lock_fd = self._try_lock()
        except OSError as err:
            self._unlock_dir()
            raise RunDirError(f"cannot use output dir: {_os_message(err, self.path)}") from None
        except RunDirError:
            self._unlock_dir()
            raise

    def _lock_dir(self) -> int | None:
        """Lock the directory itself; None where its file system has no such locks."""
        fd = os.open(self.path, os.O_RDONLY | os.O_DIRECTORY)
        if self._flock(fd) is not None:
            return None  # e.g. NFS without directory locks: run.lock's lock alone guards
        return fd

    def _flock(self, fd: int) -> OSError | None:
        """Take an exclusive flock on `fd`: None when taken; a holder gives one 'in use' line;
        any other failure closes `fd` and is returned for the caller to judge."""
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            os.close(fd)
            if err.errno in (errno.EAGAIN, errno.EACCES):
                raise RunDirError(self._busy()) from None
            return err
        return None

    def _unlock_dir(self) -> None:
        if self._dir_fd is not None:
            os.close(self._dir_fd)
            self._dir_fd = None

    def _busy(self) -> str:
        lock = self.path / LOCK
        try:
            fd = os.open(lock, os.O_RDONLY | os.O_NOFOLLOW)
        except OSError:
            holder = "(unknown pid: run.lock was removed)"
        else:
            holder = _read_holder(fd)
            os.close(fd)
        return (
            f"{self.path} is in use by process {holder} (lock {lock}); "
            "wait for it to end or choose another output dir"
        )

    def _try_lock(self) -> int | None:
        """Lock `run.lock`; None when the file was replaced meanwhile (retry)."""
        lock = self.path / LOCK
        if lock.is_symlink():
            raise RunDirError(f"{lock} is a symbolic link; remove it (tpri never follows one)")
        fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o666)
        err = self._flock(fd)
        if err is not None:
            if err.errno in (errno.ENOLCK, errno.ENOSYS, errno.EOPNOTSUPP, errno.EINVAL):
                raise RunDirError(
                    f"{lock}: cannot lock it ({os.strerror(err.errno)}): tpri needs flock on the "
                    "output dir's filesystem (Lustre: mount with -o flock; NFS: a lock manager); "
                    "choose an output dir on a filesystem that has it"
                ) from None
            raise err
        if not lock.exists() or os.stat(lock).st_ino != os.fstat(fd).st_ino:
            os.close(fd)  # the holder removed the file between our open and our lock
            return None
        try:  # who holds it, for the message of a second process; a full disk only loses that
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()} {socket.gethostname()}\n".encode())
        except OSError:
            pass
        return fd

    def release(self) -> None:
        if self._lock_fd is not None:
            (self.path / LOCK).unlink(missing_ok=True)  # before unlocking: no one can hold it
            os.close(self._lock_fd)
            self._lock_fd = None
        self._unlock_dir()

    # --- reading what is there -----------------------------------------------------------
    def read_previous(self) -> Previous:
        """Summary, checkpoint and record of an earlier run, read without changing anything;
        damaged files are noted (see `recover`)."""
        prev = Previous()
        prev.summary = self._read_summary(prev.notes)
        prev.checkpoint = self._read_checkpoint(prev)
        if prev.summary and prev.checkpoint and _disagree(prev.summary, prev.checkpoint):
            prev.notes.append(f"{self.path / SUMMARY} disagrees with the checkpoint; rebuilding it")
            prev.summary = None
        try:
            record = yaml.safe_load((self.path / RECORD / "config.yaml").read_text())
            prev.record = record if isinstance(record, dict) else None
        except (OSError, yaml.YAMLError):
            prev.record = None
        return prev

    def _read_summary(self, notes: list[str]) -> dict | None:
        path = self.path / SUMMARY
        if not path.exists():
            return None
        try:
            summary = json.loads(path.read_text())
        except (OSError, ValueError) as err:
            notes.append(f"{path} is unreadable ({type(err).__name__}); rebuilding it")
            return None
        if not _valid_summary(summary):
            notes.append(f"{path} is malformed; rebuilding it")
            return None
        return summary

    def _read_checkpoint(self, prev: Previous) -> Checkpoint | None:
        path = self.path / CHECKPOINT
        if not path.exists() and not path.is_symlink():
            return None
        try:
            state = io.load_torch(path)  # tensors and plain data only: no pickled code runs
        except io.UnreadableFile as err:  # truncated, garbage, a foreign pickle, a directory
            prev.damaged_checkpoint = True
            prev.notes.append(f"{err}")
            return None
        checkpoint = Checkpoint.from_state(state)
        if checkpoint is None:
            prev.damaged_checkpoint = True
            prev.notes.append(f"{path} is not a tpri checkpoint (wrong structure)")
        return checkpoint

    def recover(self, prev: Previous) -> None:
        """Once a run is accepted: move a damaged checkpoint aside, remove stale temp files."""
        if prev.damaged_checkpoint:
            self.set_aside(CHECKPOINT)
        io.remove_stale_temps(self.path, OWN_FILES)
        if (self.path / RECORD).is_dir():
            io.remove_stale_temps(self.path / RECORD, RECORD_FILES)

    def set_aside(self, name: str, why: str = "corrupt") -> Path:
        """Rename a damaged (or replaced) file to `<name>.<why>-<time>` (kept for inspection)."""
        aside = self.path / f"{name}.{why}-{time.strftime('%Y%m%d-%H%M%S')}"
        os.replace(self.path / name, aside)
        log.warning("moved %s to %s", self.path / name, aside.name)
        return aside

    def check_same_run(self, cfg: dict, prev: Previous) -> None:
        """Refuse a config whose trajectory differs from the run already in the dir, and a dir
        holding files named like a run's (metrics.csv, ...) with no trace of a tpri run (no
        record, summary or checkpoint): they are someone else's, never overwritten."""
        theirs = prev.config
        if theirs is None:
            self._check_foreign(prev)
            return
        changes = changed_values(theirs, trajectory_config(cfg))
        if changes:
            shown = ", ".join(f"{key} changed {_show(old)} -> {_show(new)}" for key, old, new in changes)
            raise RunRefused(
                f"{self.path} holds a run of another config: {shown}; nothing was changed. "
                "Use the original value or another output dir"
            )

    def _check_foreign(self, prev: Previous) -> None:
        ours = prev.summary or prev.checkpoint or prev.record or prev.damaged_checkpoint
        ours = ours or (self.path / SUMMARY).exists() or (self.path / RECORD / "config.yaml").exists()
        clashing = [n for n in (METRICS, GRADIENTS, BEST) if (self.path / n).exists()]
        if clashing and not ours:
            raise RunRefused(
                f"{self.path} holds files that are not a tpri run's ({', '.join(clashing)}: no "
                f"{RECORD}/config.yaml, {SUMMARY} or {CHECKPOINT}); nothing was changed. "
                "Use another output dir"
            )

    def check_resumable(self, cfg: dict, prev: Previous) -> None:
        """Refuse (RunRefused, nothing changed) a rerun that would train something other than
        the run's continuation: its checkpoint is gone (it would start again from iteration 0),
        or it got beyond this `max_iter` (it would be recorded completed past its own length).
        `restart=true` skips this check (see `restart`)."""
        path, max_iter = self.path / CHECKPOINT, cfg["max_iter"]
        if prev.finished(max_iter):
            return
        saved = prev.saved_iteration
        if prev.checkpoint is None and not prev.damaged_checkpoint and saved:
            raise RunRefused(
                f"{path} is missing: the run saved it at iteration {saved} and cannot continue "
                "without it; nothing was changed. Rerun with restart=true to train it again from "
                "iteration 0, or use another output dir"
            )
        reached = prev.checkpoint.iteration if prev.checkpoint else 0
        if reached > max_iter:
            raise RunRefused(
                f"{self.path} holds a run stopped at iteration {reached} ({path}), beyond "
                f"max_iter={max_iter}; nothing was changed. Give max_iter >= {reached} to continue "
                "it, restart=true to train it again from iteration 0, or use another output dir"
            )

    def restart(self, prev: Previous) -> Previous:
        """restart=true: the checkpoint is set aside and the job trains from iteration 0 (its
        csv files and best.pt are rewritten as it goes). What remains known: the record."""
        for name in (CHECKPOINT, GRADIENTS):
            if (self.path / name).exists() or (self.path / name).is_symlink():
                self.set_aside(name, "replaced")
        return Previous(record=prev.record)

    def mark_lost(self, reason: str) -> bool:
        """A job left `running` by a process that is gone (its lock is free) is recorded
        `failed` with `reason`; True when it was. A job someone holds is left alone."""
        if not (self.path / SUMMARY).is_file():
            return False
        try:
            with self:
                summary = self._read_summary([])
                if summary is None or summary["status"] != "running":
                    return False
                self.save_summary({**summary, "status": "failed", "reason": reason})
                return True
        except (OSError, RunDirError):
            return False

    # --- writing -------------------------------------------------------------------------
    def write_record(self, cfg: dict, overrides: list[str] | None, hydra_yaml: str | None) -> None:
        """The accepted config (resolved), the overrides and Hydra's settings, in `.hydra/`."""
        folder = self.path / RECORD
        folder.mkdir(exist_ok=True)
        io.save_text(yaml.safe_dump(cfg, sort_keys=False), folder / "config.yaml")
        io.save_text(yaml.safe_dump(list(overrides or [])), folder / "overrides.yaml")
        if hydra_yaml is not None:
            io.save_text(hydra_yaml, folder / "hydra.yaml")

    def save_checkpoint(self, checkpoint: Checkpoint) -> None:
        io.save_torch(checkpoint.state(), self.path / CHECKPOINT)

    def save_best(self, state: dict) -> None:
        io.save_torch(state, self.path / BEST)

    def save_summary(self, summary: dict) -> None:
        io.save_json(summary, self.path / SUMMARY)

    def discard_if_empty(self) -> None:
        """Remove the dir of a rejected first run: only when no one holds it and it holds
        nothing but an empty log (what Hydra creates before the job starts)."""
        if not self.path.is_dir():
            return
        try:
            with self:
                names = {p.name for p in self.path.iterdir()} - {LOCK}
                log_file = self.path / "train.log"
                if names <= {"train.log"} and (not log_file.exists() or log_file.stat().st_size == 0):
                    log_file.unlink(missing_ok=True)
                    (self.path / LOCK).unlink(missing_ok=True)
                    self.path.rmdir()
        except (OSError, RunDirError):
            pass


def _valid_summary(summary) -> bool:
    def is_count(v):
        return isinstance(v, int) and not isinstance(v, bool) and v >= 0

    return (
        isinstance(summary, dict)
        and summary.get("status") in STATUSES
        and is_count(summary.get("iteration"))
        and all(isinstance(summary.get(k, {}), dict) for k in ("config", "final", "best"))
    )


def _disagree(summary: dict, checkpoint: Checkpoint) -> bool:
    """Whether summary.json contradicts the checkpoint of the same stage: a final checkpoint
    holds the summary written with it (NaN compared as written)."""
    if checkpoint.status != summary["status"]:
        return False  # a later stretch wrote it, or the checkpoint is not final: Previous.status
    if checkpoint.iteration != summary["iteration"]:
        return True
    kept = checkpoint.summary
    return kept is not None and json.dumps(kept, sort_keys=True) != json.dumps(summary, sort_keys=True)


def _valid_checkpoint(state) -> bool:
    return (
        isinstance(state, dict)
        and all(k in state for k in CHECKPOINT_KEYS)
        and isinstance(state["model"], dict)
        and isinstance(state["config"], dict)
        and isinstance(state["metrics"], list)
        and isinstance(state["gradients"], list)
        and isinstance(state["iteration"], int)
        and state["iteration"] >= 0
    )


@dataclass(frozen=True)
class Holder:
    """Who a job dir's `run.lock` names: the PID and host of the process that runs it."""

    pid: int
    host: str

    def alive(self) -> bool | None:
        """Whether that process still exists: None when it runs on another host (unknown)."""
        if self.host != socket.gethostname():
            return None
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:  # someone else's process: it exists
            return True
        return True

    def __str__(self) -> str:
        return f"{self.pid} on {self.host}"


GONE = "interrupted (process gone)"  # what readers report for a `running` job nobody runs


def lock_holder(path: str | Path) -> Holder | None:
    """The process `<path>/run.lock` names; None when there is no lock file or it names none
    (a job writes it right after taking the lock)."""
    try:
        text = (Path(path) / LOCK).read_text(errors="replace").split()
    except OSError:
        return None
    if len(text) < 2 or not text[0].isdigit():
        return None
    return Holder(int(text[0]), text[1])


def observed_status(path: str | Path, status: str | None) -> str | None:
    """The status a reader reports for a job dir whose summary says `status`: a `running` job
    whose lock names a process of this host that no longer exists, or that holds no lock at
    all (the lock lives as long as the process), is `interrupted (process gone)`: it was
    killed (SIGKILL, a crash, a lost session) and `tpri-train --resume DIR` resumes it."""
    if status != "running":
        return status
    lock = Path(path) / LOCK
    holder = lock_holder(path)
    if holder is None:
        return status if lock.exists() else GONE
    return GONE if holder.alive() is False else status


def claim_new_dir(path: str | Path) -> Path:
    """Create `path`, or `path-2`, `path-3`, ... when it exists: a fresh dir no other process
    got (two commands started in the same second get two dirs). RunDirError if it cannot."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        for n in range(1, 10_000):
            candidate = path if n == 1 else path.with_name(f"{path.name}-{n}")
            try:
                candidate.mkdir()
                return candidate
            except FileExistsError:
                continue
    except OSError as err:
        raise RunDirError(f"cannot use output dir: {_os_message(err, path)}") from None
    raise RunDirError(f"cannot use output dir {path}: 10000 dirs of that name exist")


def point_link(link: str | Path, target: str | Path) -> bool:
    """Make `link` a symbolic link to `target` (relative), replacing an older link at once;
    False (nothing changed) when something else than a link is in the way or it cannot."""
    link = Path(link)
    if link.exists() and not link.is_symlink():
        return False
    temp = link.with_name(f".{link.name}.{os.getpid()}.tmp")
    try:
        temp.unlink(missing_ok=True)
        os.symlink(os.path.relpath(Path(target).absolute(), link.parent.absolute()), temp)
        os.replace(temp, link)
    except OSError:
        temp.unlink(missing_ok=True)
        return False
    return True


def find_job_dirs(root: str | Path) -> list[Path]:
    """Every dir below `root` (itself included) holding a job's record (`.hydra/`) or
    summary, in natural order (`sweep/2` before `sweep/10`); symbolic links are not followed."""
    jobs = []
    for path, dirs, files in os.walk(root):
        if RECORD in dirs or SUMMARY in files:
            jobs.append(Path(path))
        dirs[:] = [d for d in dirs if not d.startswith(".")]
    return sorted(jobs, key=_natural)


def _natural(path: Path) -> list:
    return [int(s) if s.isdigit() else s for s in re.split(r"(\d+)", path.as_posix())]


def _read_holder(fd: int) -> str:
    try:
        text = os.pread(fd, 200, 0).decode(errors="replace").split()
    except OSError:
        text = []
    return f"{text[0]} on {text[1]}" if len(text) >= 2 else "(unknown pid)"


def changed_values(old: dict, new: dict) -> list[tuple[str, object, object]]:
    """(key, old value, new value) of every key whose value differs, dotted and sorted; a
    group's copy of a top-level key (`optimizer.lr: ${lr}`) is left out when the top-level key
    shows the same change: a command changes `lr`, not both."""
    keys = _diff_keys(new, old)
    pairs = {key: (_get(old, key), _get(new, key)) for key in keys}
    return [
        (key, *pair)
        for key, pair in sorted(pairs.items())
        if "." not in key or pairs.get(key.rpartition(".")[2]) != pair
    ]


def _get(cfg: dict, key: str):
    for part in key.split("."):
        cfg = cfg.get(part) if isinstance(cfg, dict) else None
    return cfg


def _show(value) -> str:
    if value is None:
        return "(absent)"
    return json.dumps(value) if isinstance(value, (str, bool, list, dict)) else str(value)


def _diff_keys(a: dict, b: dict, prefix: str = "") -> set[str]:
    keys = set()
    for k in set(a) | set(b):
        va, vb = a.get(k), b.get(k)
        if isinstance(va, dict) and isinstance(vb, dict):
            keys |= _diff_keys(va, vb, f"{prefix}{k}.")
        elif va != vb:
            keys.add(prefix + k)
    return keys
