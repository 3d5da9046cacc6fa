"""Experiment trackers: TensorBoard, MLflow and Weights & Biases, chosen by the config's `logger`
group (`logger=[tensorboard,mlflow]`). metrics.csv and summary.json are written whatever is chosen;
a tracker receives the same things: the accepted config once, each evaluation row, the final status.

    trackers = make_trackers(cfg.get("logger"), run_dir, run_name)   # checks every option first
    for t in trackers: t.log_params(config)
    for t in trackers: t.log_metrics(row, step=row["iteration"])     # at each evaluation
    for t in trackers: t.close(status)                               # completed / diverged / ...

Options live under `logger.<name>` (conf/logger/<name>.yaml); each tracker's dataclass below lists
them with their defaults. The tracker packages are optional: `pip install 'tpri[trackers]'`.

A tracker never takes training down: one that cannot start is a ConfigError (one line, before
training); one that fails later is reported in one line and dropped (`Guarded`), its run still
closed if the store allows it. A resumed job continues its tracker runs: their ids are kept in
<run dir>/trackers.json (MLflow, W&B); TensorBoard writes into the same folder again.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import logging
import os
import threading
import time
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Callable, Protocol

from tpri.configs.schema import Config
from tpri.io import save_json
from tpri.run.rundir import STATUSES as RUN_STATUSES
from tpri.spec import ConfigError, check_section, check_value, field_spec, spec

log = logging.getLogger("tpri")

INSTALL_HINT = "pip install 'tpri[trackers]'"
STATUSES = tuple(s for s in RUN_STATUSES if s != "running")  # a tracker sees only an end
IDS_FILE = "trackers.json"  # in the run dir: {tracker: {"run_id": ...}} to continue on resume
# MLflow's HTTP client retries a dead server for minutes by default; a tracker fails fast
MLFLOW_HTTP = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "10",
}


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
# tpri.spec fields, as a dataset's or a model's options: `test` and `text` where a scalar type does
# not say what is accepted; `check_section` checks `logger.<name>` against them.


def _text(v) -> bool:
    return isinstance(v, str)


def _non_empty(v) -> bool:
    return isinstance(v, str) and v != ""


def _str_list(v) -> bool:
    return isinstance(v, (list, tuple)) and all(isinstance(s, str) for s in v)


def _tag_dict(v) -> bool:
    scalar = (str, int, float, bool)
    return isinstance(v, dict) and all(isinstance(k, str) and isinstance(t, scalar) for k, t in v.items())


def _string(default=None, text: str = "a string or null") -> Any:
    """A field taking any string (empty too) or null."""
    return spec(default, test=_text, text=text)


@dataclass(frozen=True)
class TensorBoardOptions:
    save_dir: str | None = _string(text="a path or null (null: <run dir>/tensorboard)")


@dataclass(frozen=True)
class MLflowOptions:
    tracking_uri: str = spec("sqlite:///outputs/mlflow.db", test=_text, text="a tracking URI")
    experiment_name: str = spec("tpri", test=_non_empty, text="a non-empty string")
    run_name: str | None = _string(text="a string or null (null: the run's name)")
    tags: dict = spec({}, test=_tag_dict, text="a mapping of tag names to strings or numbers")


WANDB_MODES = ("offline", "online", "disabled")


@dataclass(frozen=True)
class WandbOptions:
    project: str = spec("tpri", test=_non_empty, text="a non-empty string")
    entity: str | None = _string()
    mode: str = spec("offline", choices=WANDB_MODES)
    dir: str | None = _string(text="a path or null (null: the run dir)")
    name: str | None = _string(text="a string or null (null: the run's name)")
    group: str | None = _string()
    tags: list = spec([], test=_str_list, text="a list of strings")


def parse_options(name: str, options_type: type, raw: dict | None):
    """Check `logger.<name>`'s options against the dataclass; ConfigError names the first bad key."""
    raw = {} if raw is None else raw
    if not isinstance(raw, dict):
        raise ConfigError(f"logger.{name}={raw!r} is invalid; expected a mapping of options or null")
    check_section(f"logger.{name}.", raw, options_type, optional=[f.name for f in fields(options_type)])
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


def one_line(err: BaseException, limit: int = 300) -> str:
    """An exception as one short line (tracker libraries raise multi-line messages)."""
    text = " ".join(str(err).split()) or type(err).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def recall_id(run_dir: Path, name: str) -> dict:
    """What tracker `name` kept in the run dir to continue its run ({} when nothing)."""
    try:
        kept = json.loads((Path(run_dir) / IDS_FILE).read_text())
    except (OSError, ValueError):
        return {}
    entry = kept.get(name) if isinstance(kept, dict) else None
    return entry if isinstance(entry, dict) else {}


def keep_id(run_dir: Path, name: str, entry: dict) -> None:
    """Remember tracker `name`'s run (`entry`) in the run dir, beside the other trackers'."""
    path = Path(run_dir) / IDS_FILE
    try:
        kept = json.loads(path.read_text())
    except (OSError, ValueError):
        kept = {}
    kept = kept if isinstance(kept, dict) else {}
    path.parent.mkdir(parents=True, exist_ok=True)
    save_json({**kept, name: entry}, path)


def _quiet_writer_threads() -> None:
    """TensorBoard writes from a thread that prints a traceback when a write fails, then hands
    the error to the next call (where `Guarded` reports it in one line): silence that print."""
    previous = threading.excepthook
    if getattr(previous, "tpri", False):
        return

    def hook(args) -> None:
        if type(args.thread).__name__ != "_AsyncWriterThread":
            previous(args)

    hook.tpri = True
    threading.excepthook = hook


class TensorBoardTracker:
    """Scalars per evaluation, the config as a text table (tag `config`), the status as text.
    Event files go to <run dir>/tensorboard, or <save_dir>/<parent>/<job folder> with a save_dir
    (a sweep's jobs sharing one save_dir each get their own TensorBoard run)."""

    def __init__(self, options: TensorBoardOptions, run_dir: Path, run_name: str):
        writer_type = _import("tensorboard", "torch.utils.tensorboard").SummaryWriter
        self.log_dir = Path(options.save_dir) / run_name if options.save_dir else run_dir / "tensorboard"
        if self.log_dir.exists() and not self.log_dir.is_dir():
            raise ConfigError(f"logger.tensorboard: {self.log_dir} exists and is not a directory")
        self.log_dir.mkdir(parents=True, exist_ok=True)
        if not os.access(self.log_dir, os.W_OK | os.X_OK):
            raise ConfigError(f"logger.tensorboard: cannot write into {self.log_dir}")
        _quiet_writer_threads()
        self.writer = writer_type(log_dir=str(self.log_dir))

    def log_params(self, config: dict) -> None:
        rows = "\n".join(f"| {k} | {v} |" for k, v in flatten(config).items())
        self.writer.add_text("config", f"| key | value |\n|---|---|\n{rows}")
        self.writer.flush()

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        for key, value in _numbers(metrics).items():
            self.writer.add_scalar(key, value, global_step=step)
        self.writer.flush()  # a write failure shows here, not later in a background thread

    def close(self, status: str) -> None:
        self.writer.add_text("status", status)
        self.writer.close()


# tpri status -> MLflow's run status; the tpri status is also kept as the tag `status`
MLFLOW_STATUS = {"completed": "FINISHED", "diverged": "FINISHED", "failed": "FAILED", "interrupted": "KILLED"}


def check_mlflow_store(uri: str) -> None:
    """What can be told about a tracking URI without MLflow (which retries some failures for
    minutes): a folder store (MLflow 3 no longer writes one), a SQLite path that is a folder or
    not a SQLite file or cannot be created."""
    if "://" not in uri or uri.startswith("file:"):
        raise ConfigError(
            f"logger.mlflow.tracking_uri={uri}: a folder store is not supported; "
            "expected sqlite:///PATH.db or a server http(s)://HOST:PORT"
        )
    if uri.startswith("sqlite:///"):
        path = Path(uri.removeprefix("sqlite:///"))
        if path.is_dir():
            raise ConfigError(
                f"logger.mlflow.tracking_uri={uri}: {path} is a directory; expected a SQLite file"
            )
        if path.is_file():
            with open(path, "rb") as f:
                head = f.read(16)
            if head and head != b"SQLite format 3\x00":
                raise ConfigError(f"logger.mlflow.tracking_uri={uri}: {path} is not a SQLite database")
        folder = next(p for p in (path.absolute(), *path.absolute().parents) if p.exists())
        if not os.access(folder if folder.is_dir() else folder.parent, os.W_OK | os.X_OK):
            raise ConfigError(f"logger.mlflow.tracking_uri={uri}: cannot write into {folder}")


class MLflowTracker:
    """One MLflow run per job in `experiment_name` (created when missing); params are the
    flattened config, metrics each evaluation at step = iteration, tags the run dir and status.
    A resumed job continues its run (its id is kept in <run dir>/trackers.json)."""

    def __init__(self, options: MLflowOptions, run_dir: Path, run_name: str):
        for key, value in MLFLOW_HTTP.items():
            os.environ.setdefault(key, value)
        check_mlflow_store(options.tracking_uri)
        client_type = _import("mlflow", "mlflow.tracking").MlflowClient
        entities = importlib.import_module("mlflow.entities")
        self.Param, self.Metric = entities.Param, entities.Metric
        logging.getLogger("alembic").setLevel(logging.WARNING)  # its INFO lines on store creation
        # its store logs each database error with a traceback; Guarded reports it in one line
        logging.getLogger("mlflow.store.db.utils").setLevel(logging.CRITICAL)
        uri = options.tracking_uri
        with _sqlite_lock(uri):  # parallel jobs on a new store: one creates the tables at a time
            self.client = client_type(tracking_uri=uri)
            experiment_id = self._experiment(options.experiment_name, uri)
        self.logged: dict[str, str] = {}
        self.run_id = self._continued(recall_id(run_dir, "mlflow"), uri, experiment_id)
        if self.run_id is None:
            tags = {**{k: str(v) for k, v in options.tags.items()}, "run_dir": str(run_dir)}
            run = self.client.create_run(experiment_id, run_name=options.run_name or run_name, tags=tags)
            self.run_id = run.info.run_id
        keep_id(run_dir, "mlflow", {"run_id": self.run_id, "tracking_uri": uri})

    def _experiment(self, name: str, uri: str) -> str:
        experiment = self.client.get_experiment_by_name(name)
        if experiment is not None:
            if experiment.lifecycle_stage == "deleted":
                raise ConfigError(
                    f"logger.mlflow.experiment_name={name}: the experiment was deleted from {uri}; "
                    "restore it (mlflow experiments restore) or choose another name"
                )
            return experiment.experiment_id
        try:
            return self.client.create_experiment(name)
        except Exception:  # created meanwhile by another process on a non-SQLite store
            experiment = self.client.get_experiment_by_name(name)
            if experiment is None:
                raise
            return experiment.experiment_id

    def _continued(self, kept: dict, uri: str, experiment_id: str) -> str | None:
        """The id of this job's earlier run in the same store and experiment, set RUNNING again."""
        if kept.get("tracking_uri") != uri or not kept.get("run_id"):
            return None
        try:
            run = self.client.get_run(kept["run_id"])
        except Exception:  # deleted from the store meanwhile: a new run
            return None
        if run.info.experiment_id != experiment_id or run.info.lifecycle_stage != "active":
            return None
        self.logged = dict(run.data.params)
        self.client.update_run(run.info.run_id, status="RUNNING")
        return run.info.run_id

    def log_params(self, config: dict) -> None:
        """New params; on a continued run, values changed on resume (max_iter, ...) become tags
        `resumed.<key>` (MLflow refuses to change a param)."""
        flat = {k: str(v) for k, v in flatten(config).items()}
        params = [self.Param(k, v) for k, v in flat.items() if k not in self.logged]
        changed = {f"resumed.{k}": v for k, v in flat.items() if k in self.logged and self.logged[k] != v}
        for i in range(0, len(params), 100):  # MLflow takes at most 100 params per batch
            self.client.log_batch(self.run_id, params=params[i : i + 100])
        for key, value in changed.items():
            self.client.set_tag(self.run_id, key, value)
        self.logged.update(flat)

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        now = int(time.time() * 1000)
        rows = [self.Metric(k, v, now, step) for k, v in _numbers(metrics).items()]
        self.client.log_batch(self.run_id, metrics=rows)

    def close(self, status: str) -> None:
        self.client.set_tag(self.run_id, "status", status)
        self.client.set_terminated(self.run_id, status=MLFLOW_STATUS.get(status, "FAILED"))


class WandbTracker:
    """A Weights & Biases run, offline unless `mode: online`; offline runs land in
    <dir>/wandb/offline-run-* (`wandb sync` uploads them later). A resumed job continues its run:
    the run's id is kept in <run dir>/trackers.json and passed back (`resume="allow"`), so an
    online store appends to the same run and `wandb sync` of offline stretches merges them."""

    def __init__(self, options: WandbOptions, run_dir: Path, run_name: str):
        wandb = _import("wandb", "wandb")
        kept = recall_id(run_dir, "wandb").get("run_id")
        kept = kept if isinstance(kept, str) and kept else None
        try:
            self.run = self._start(wandb, options, run_dir, run_name, kept)
        except Exception:  # noqa: BLE001 - a kept id W&B refuses (a damaged trackers.json): a new run
            if kept is None:
                raise
            log.warning("logger.wandb: the run id kept in %s was refused; starting a new run", IDS_FILE)
            self.run = self._start(wandb, options, run_dir, run_name, None)
        try:
            keep_id(run_dir, "wandb", {"run_id": self.run.id})
        except OSError as err:
            log.warning("logger.wandb: run id not kept (%s); a resumed job starts a new run", one_line(err))

    @staticmethod
    def _start(wandb, options: WandbOptions, run_dir: Path, run_name: str, run_id: str | None):
        continued = dict(id=run_id, resume="allow") if run_id else {}
        return wandb.init(
            **continued,
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
        self.run.summary["status"] = status
        self.run.finish(exit_code=0 if status in ("completed", "diverged") else 1)


class Guarded:
    """A started tracker whose failures never reach training: the first one is reported in one
    line and the tracker dropped; `close` is still tried (quietly after a failure) so that its
    run is not left open in the store."""

    def __init__(self, name: str, tracker: Tracker, tag: str = ""):
        self.name, self.tracker, self.tag = name, tracker, tag
        self.dropped = False

    def log_params(self, config: dict) -> None:
        self._call(self.tracker.log_params, config)

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        self._call(self.tracker.log_metrics, metrics, step)

    def close(self, status: str) -> None:
        try:
            self.tracker.close(status)
        except Exception as err:  # noqa: BLE001 - a tracker must not mask the run's own outcome
            if not self.dropped:
                log.warning("%slogger.%s: closing failed: %s", self.tag, self.name, one_line(err))

    def _call(self, method: Callable, *args) -> None:
        if self.dropped:
            return
        try:
            method(*args)
        except Exception as err:  # noqa: BLE001 - training goes on without this tracker
            self.dropped = True
            log.warning(
                "%slogger.%s: dropped after a failure (%s); training goes on, metrics.csv has every row",
                self.tag,
                self.name,
                one_line(err),
            )


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


def make_trackers(logger_cfg: dict | None, run_dir: Path, run_name: str, tag: str = "") -> list[Guarded]:
    """The trackers chosen by the config's `logger` key (None: none), each `Guarded`. Every
    option is checked before any tracker starts; one that cannot start is a ConfigError (one
    line), and those already started are closed as failed."""
    if logger_cfg is None:
        return []
    check_value("logger", logger_cfg, Any, field_spec(Config, "logger"))  # the config's rule
    for name in logger_cfg:
        if name not in TRACKERS:
            raise ConfigError(f"logger.{name}: unknown tracker; accepted: {', '.join(TRACKERS)}")
    options = {name: parse_options(name, TRACKERS[name][0], raw) for name, raw in logger_cfg.items()}
    started: list[Guarded] = []
    try:
        for name, opts in options.items():
            started.append(Guarded(name, _start(name, opts, Path(run_dir), run_name), tag))
    except BaseException:
        for tracker in started:
            tracker.close("failed")
        raise
    return started


def _start(name: str, options, run_dir: Path, run_name: str) -> Tracker:
    try:
        return TRACKERS[name][1](options, run_dir, run_name)
    except ConfigError:
        raise
    except Exception as err:  # noqa: BLE001 - the store, server or folder refused: one line
        raise ConfigError(f"logger.{name}: cannot start: {one_line(err)}") from None
