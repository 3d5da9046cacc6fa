"""Experiment trackers: TensorBoard, MLflow and Weights & Biases, chosen by the config's `logger`
group (`logger=[tensorboard,mlflow]`). metrics.csv and summary.json are written whatever is chosen;
a tracker receives the same things: the accepted config once, each evaluation row, the final status.

    trackers = make_trackers(cfg.get("logger"), run_dir, run_name)   # checks every option first
    for t in trackers: t.log_params(config)
    for t in trackers: t.log_metrics(row, step=row["iteration"])     # at each evaluation
    for t in trackers: t.close(status)                               # completed / diverged / ...

Options live under `logger.<name>` (conf/logger/<name>.yaml); each tracker's dataclass below lists
them with their defaults. The tracker packages are optional: `pip install 'tpri[trackers]'`.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import time
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Callable, Protocol

from tpri.config import ConfigError

log = logging.getLogger("tpri")

INSTALL_HINT = "pip install 'tpri[trackers]'"
STATUSES = ("completed", "diverged", "failed", "interrupted")


class Tracker(Protocol):
    def log_params(self, config: dict) -> None:
        """The accepted, resolved config (nested dict), logged once per run."""

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        """One evaluation row (names as in metrics.csv); non-numeric entries are skipped."""

    def close(self, status: str) -> None:
        """Finish the run with tpri's status (one of STATUSES); never raises."""


def flatten(config: dict, prefix: str = "") -> dict[str, Any]:
    """{"optimizer": {"lr": 0.1}} -> {"optimizer.lr": 0.1}; lists and empty mappings stay values."""
    flat = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def _numbers(metrics: dict) -> dict[str, float]:
    """The numeric entries of an evaluation row (None, strings and booleans dropped)."""
    return {
        k: float(v) for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)
    }


# ---- options ---------------------------------------------------------------------------------------


def _opt(default, accepted: str, test: Callable[[Any], bool]):
    """A dataclass field whose metadata says what values are accepted."""
    meta = {"accepted": accepted, "test": test}
    if isinstance(default, (dict, list)):  # mutable: a fresh copy per instance
        return field(default_factory=lambda: type(default)(default), metadata=meta)
    return field(default=default, metadata=meta)


def _str_or_none(v) -> bool:
    return v is None or isinstance(v, str)


def _str_list(v) -> bool:
    return isinstance(v, (list, tuple)) and all(isinstance(s, str) for s in v)


def _str_dict(v) -> bool:
    return isinstance(v, dict) and all(isinstance(k, str) for k in v)


@dataclass(frozen=True)
class TensorBoardOptions:
    save_dir: str | None = _opt(None, "a path or null (null: <run dir>/tensorboard)", _str_or_none)


@dataclass(frozen=True)
class MLflowOptions:
    tracking_uri: str = _opt("sqlite:///outputs/mlflow.db", "a tracking URI", lambda v: isinstance(v, str))
    experiment_name: str = _opt("tpri", "a non-empty string", lambda v: isinstance(v, str) and v != "")
    run_name: str | None = _opt(None, "a string or null (null: the run's name)", _str_or_none)
    tags: dict = _opt({}, "a mapping of tag names to values", _str_dict)


WANDB_MODES = ("offline", "online", "disabled")


@dataclass(frozen=True)
class WandbOptions:
    project: str = _opt("tpri", "a non-empty string", lambda v: isinstance(v, str) and v != "")
    entity: str | None = _opt(None, "a string or null", _str_or_none)
    mode: str = _opt("offline", "one of ['offline', 'online', 'disabled']", lambda v: v in WANDB_MODES)
    dir: str | None = _opt(None, "a path or null (null: the run dir)", _str_or_none)
    name: str | None = _opt(None, "a string or null (null: the run's name)", _str_or_none)
    group: str | None = _opt(None, "a string or null", _str_or_none)
    tags: list = _opt([], "a list of strings", _str_list)


def parse_options(name: str, options_type: type, raw: dict | None):
    """Check `logger.<name>`'s options against the dataclass; ConfigError names the first bad key."""
    raw = {} if raw is None else raw
    if not isinstance(raw, dict):
        raise ConfigError(f"logger.{name}={raw!r} is invalid; expected a mapping of options or null")
    known = {f.name: f for f in fields(options_type)}
    for key, value in raw.items():
        if key not in known:
            raise ConfigError(f"logger.{name}.{key}: unknown option; accepted: {', '.join(known)}")
        if not known[key].metadata["test"](value):
            raise ConfigError(
                f"logger.{name}.{key}={value!r} is invalid; expected {known[key].metadata['accepted']}"
            )
    return options_type(**raw)


# ---- trackers --------------------------------------------------------------------------------------


def _import(name: str, module: str):
    """Import a tracker's package, or one line naming the extra that provides it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise ConfigError(
            f"logger.{name}: {name} is not installed; install the trackers extra: {INSTALL_HINT}"
        ) from None


class TensorBoardTracker:
    """Scalars per evaluation, the config as a text table (tag `config`), the status as text."""

    def __init__(self, options: TensorBoardOptions, run_dir: Path, run_name: str):
        writer_type = _import("tensorboard", "torch.utils.tensorboard").SummaryWriter
        self.log_dir = Path(options.save_dir) if options.save_dir else run_dir / "tensorboard"
        self.writer = writer_type(log_dir=str(self.log_dir))

    def log_params(self, config: dict) -> None:
        rows = "\n".join(f"| {k} | {v} |" for k, v in flatten(config).items())
        self.writer.add_text("config", f"| key | value |\n|---|---|\n{rows}")

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        for key, value in _numbers(metrics).items():
            self.writer.add_scalar(key, value, global_step=step)

    def close(self, status: str) -> None:
        with _never_raise("tensorboard"):
            self.writer.add_text("status", status)
            self.writer.close()


# tpri status -> MLflow's run status; the tpri status is also kept as the tag `status`
MLFLOW_STATUS = {"completed": "FINISHED", "diverged": "FINISHED", "failed": "FAILED", "interrupted": "KILLED"}


class MLflowTracker:
    """One MLflow run per session in `experiment_name` (created when missing); params are the
    flattened config, metrics each evaluation at step = iteration, tags the run dir and status."""

    def __init__(self, options: MLflowOptions, run_dir: Path, run_name: str):
        client_type = _import("mlflow", "mlflow.tracking").MlflowClient
        entities = importlib.import_module("mlflow.entities")
        self.Param, self.Metric = entities.Param, entities.Metric
        logging.getLogger("alembic").setLevel(logging.WARNING)  # its INFO lines on store creation
        uri = options.tracking_uri
        with _sqlite_lock(uri):  # parallel jobs on a new store: one creates the tables at a time
            self.client = client_type(tracking_uri=uri)
            experiment_id = self._experiment(options.experiment_name)
        tags = {**options.tags, "run_dir": str(run_dir)}
        run = self.client.create_run(experiment_id, run_name=options.run_name or run_name, tags=tags)
        self.run_id = run.info.run_id

    def _experiment(self, name: str) -> str:
        experiment = self.client.get_experiment_by_name(name)
        if experiment is not None:
            return experiment.experiment_id
        try:
            return self.client.create_experiment(name)
        except Exception:  # created meanwhile by another process on a non-SQLite store
            experiment = self.client.get_experiment_by_name(name)
            if experiment is None:
                raise
            return experiment.experiment_id

    def log_params(self, config: dict) -> None:
        params = [self.Param(k, str(v)) for k, v in flatten(config).items()]
        for i in range(0, len(params), 100):  # MLflow takes at most 100 params per batch
            self.client.log_batch(self.run_id, params=params[i : i + 100])

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        now = int(time.time() * 1000)
        rows = [self.Metric(k, v, now, step) for k, v in _numbers(metrics).items()]
        self.client.log_batch(self.run_id, metrics=rows)

    def close(self, status: str) -> None:
        with _never_raise("mlflow"):
            self.client.set_tag(self.run_id, "status", status)
            self.client.set_terminated(self.run_id, status=MLFLOW_STATUS.get(status, "FAILED"))


class WandbTracker:
    """A Weights & Biases run, offline unless `mode: online`; offline runs land in
    <dir>/wandb/offline-run-* (`wandb sync` uploads them later)."""

    def __init__(self, options: WandbOptions, run_dir: Path, run_name: str):
        wandb = _import("wandb", "wandb")
        self.run = wandb.init(
            project=options.project,
            entity=options.entity,
            mode=options.mode,
            dir=str(Path(options.dir) if options.dir else run_dir),
            name=options.name or run_name,
            group=options.group,
            tags=list(options.tags) or None,
            reinit="create_new",
            settings=wandb.Settings(console="off", silent=True),
        )

    def log_params(self, config: dict) -> None:
        self.run.config.update(config, allow_val_change=True)

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        self.run.log(_numbers(metrics), step=step, commit=True)  # rows are complete: no buffering

    def close(self, status: str) -> None:
        with _never_raise("wandb"):
            self.run.summary["status"] = status
            self.run.finish(exit_code=0 if status in ("completed", "diverged") else 1)


@contextlib.contextmanager
def _never_raise(name: str):
    """close() runs on every exit path, failures included: report, never raise."""
    try:
        yield
    except Exception as err:  # noqa: BLE001 - a tracker must not mask the run's own outcome
        log.warning("logger.%s: closing failed: %s", name, err)


@contextlib.contextmanager
def _sqlite_lock(uri: str):
    """For a `sqlite:///PATH` store: create PATH's folder and hold an exclusive lock on PATH.lock, so
    that concurrent jobs do not both run the schema migrations of a new database."""
    if not uri.startswith("sqlite:///"):
        yield
        return
    path = Path(uri.removeprefix("sqlite:///"))
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock
        yield
        return
    with open(f"{path}.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


# name -> (options dataclass, tracker class); the keys are the files of conf/logger/
TRACKERS: dict[str, tuple[type, Callable[..., Tracker]]] = {
    "tensorboard": (TensorBoardOptions, TensorBoardTracker),
    "mlflow": (MLflowOptions, MLflowTracker),
    "wandb": (WandbOptions, WandbTracker),
}


def make_trackers(logger_cfg: dict | None, run_dir: Path, run_name: str) -> list[Tracker]:
    """The trackers chosen by the config's `logger` key (None: none). Every option is checked before
    any tracker starts; if one fails to start, those already started are closed as failed."""
    if logger_cfg is None:
        return []
    if not isinstance(logger_cfg, dict):
        raise ConfigError(f"logger={logger_cfg!r} is invalid; expected null or a mapping of tracker names")
    for name in logger_cfg:
        if name not in TRACKERS:
            raise ConfigError(f"logger.{name}: unknown tracker; accepted: {', '.join(TRACKERS)}")
    options = {name: parse_options(name, TRACKERS[name][0], raw) for name, raw in logger_cfg.items()}
    started: list[Tracker] = []
    try:
        for name, opts in options.items():
            started.append(TRACKERS[name][1](opts, Path(run_dir), run_name))
    except BaseException:
        for tracker in started:
            tracker.close("failed")
        raise
    return started
