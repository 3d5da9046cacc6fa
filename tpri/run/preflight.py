"""Every job of a command checked before Hydra starts any: `preflight(overrides, multirun)`
composes the config of the single run, or expands a multirun the way Hydra's basic sweeper
does (the basic, joblib and submitit launchers all launch its expansion) and composes each
job, then runs the schema, `check_config` and `check_resources` on each. It returns one line
per failing job; nothing is written. Sweepers that draw their jobs as they go (Optuna) are not
expanded: the config is checked with the swept keys at their defaults, and invalid trials fail
one by one when they run (`tpri.app`).

`FailedJobs` is the Hydra callback that collects, at the end of a multirun, the jobs that
failed while running (e.g. a corrupt data file), so the command can list them and exit 1.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import os
import socket
import time
import typing
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

from hydra import initialize_config_dir, initialize_config_module
from hydra._internal.config_loader_impl import ConfigLoaderImpl
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import ChoiceSweep, IntervalSweep, Override
from hydra.errors import ConfigCompositionException, MissingConfigException
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf, open_dict
from omegaconf.errors import ConfigAttributeError, ConfigKeyError, OmegaConfBaseException, ValidationError

from tpri.algorithm.tp import Backprop
from tpri.configs.budget import Budget, for_launcher
from tpri.configs.build import DIRECTIONS
from tpri.configs.rules import (
    ConfigError,
    accepted,
    check_config,
    check_overrides,
    check_resources,
    field_kind,
    plain_config,
    show,
)
from tpri.configs.schema import GROUPS, Spec, register_configs
from tpri.data import check_files
from tpri.io import append_line
from tpri.run.rundir import RunDir, RunRefused
from tpri.spec import unknown_key

REFUSED = "Refused: "  # starts the line of a job whose dir holds another run
# sweepers that launch the expansion of hydra.sweeper.params and the command line's overrides
BASIC_SWEEPERS = (
    f"{BasicSweeper.__module__}.{BasicSweeper.__name__}",
    "hydra_plugins.tpri_plugins.sweeper.PlannedSweeper",
)


class Plan(NamedTuple):
    """What the preflight found for a command: one line per job that cannot run ([]: all can),
    and for a basic sweep its jobs (override lists, in Hydra's order) and the numbers of those
    already finished in their dirs (the sweeper launches neither these nor, again, composes
    the others: `hydra_plugins.tpri_plugins.PlannedSweeper`)."""

    errors: list[str]
    jobs: list[list[str]] | None = None
    finished: frozenset[int] = frozenset()
    # what `--dry-run` and the first line show (tpri.app)
    multirun: bool = False
    output_dir: Path | None = None  # the run dir, or the sweep dir of a multirun
    fresh: bool = False  # output_dir is the timestamped default (`${now:...}`): a new dir
    swept: tuple[str, ...] = ()  # the keys that vary, in order
    configs: tuple[dict, ...] = ()  # the configs of the jobs that can run
    launcher: str = "basic"  # hydra/launcher choice
    parallel: int = 1  # jobs at a time (joblib's n_jobs)


CHECKED: Plan | None = None  # the plan of the command this process runs (set by tpri.app)


def preflight(
    overrides: list[str], multirun: bool, config_dir: str, config_name: str = "config"
) -> list[str]:
    """One line per invalid job of `train.py [-m] overrides` ([] when all are valid)."""
    return plan(overrides, multirun, config_dir, config_name).errors


def plan(
    overrides: list[str],
    multirun: bool,
    config_dir: str,
    config_name: str = "config",
    check_data: bool = True,
) -> Plan:
    """Compose and check every job of `train.py [-m] overrides`; nothing is written. Without
    `check_data` (a dry run), missing dataset files do not stop it (`missing_data` lists them)."""
    register_configs()
    try:
        null_groups(overrides)
        hydra_sweeps(overrides)
    except ConfigError as err:
        return Plan([str(err)])
    with _initialize(config_dir):
        hydra = GlobalHydra.instance().hydra
        try:
            base = hydra.compose_config(
                config_name,
                first_group_choices(hydra, overrides),
                run_mode=RunMode.MULTIRUN,
                validate_sweep_overrides=False,
            )
        except Exception as err:  # noqa: BLE001  (any composition error becomes one line)
            return Plan([one_line(err)])
        multirun = multirun or base.hydra.mode == RunMode.MULTIRUN
        try:
            if multirun:
                check_sweep_options(base.hydra, [o for o in overrides if not _is_hydra(o)])
        except ConfigError as err:
            return Plan([str(err)])
        info = _plan_info(base, multirun)
        data = DataFiles() if check_data else None
        try:
            if not multirun:
                compose = functools.partial(_single_run, hydra, config_name, base)
                check = inspect_job(compose, overrides, info["output_dir"], data)
                return Plan([check.error] if check.error else [], None, configs=_configs(check), **info)
            if base.hydra.sweeper.get("_target_") not in BASIC_SWEEPERS:
                # e.g. Optuna: trials are drawn while the study runs; the rest of the config is
                # checked now (the swept keys at their defaults), each trial when it runs
                check = inspect_job(lambda _: base, overrides, None, data)
                return Plan([check.error] if check.error else [], None, configs=_configs(check), **info)
            return _plan_sweep(hydra, config_name, base, overrides, data)._replace(**info)
        except MissingData as err:  # the whole command: one line, whichever jobs it concerns
            return Plan([str(err)])


def check_sweep_options(hydra_cfg: DictConfig, task_overrides: list[str]) -> None:
    """Raise ConfigError on a launcher or sweeper option the plugin would reject only once the
    sweep started (with a traceback): joblib's `n_jobs=0`, Optuna's `n_trials` below 1 and an
    interval (in `hydra.sweeper.params` or on the command line) whose low end is above its
    high end."""
    launcher, sweeper = hydra_cfg.launcher, hydra_cfg.sweeper
    if "joblib" in str(launcher.get("_target_", "")) and launcher.get("n_jobs") == 0:
        raise ConfigError(
            "hydra.launcher.n_jobs=0 is invalid; expected a number of jobs at a time >= 1, "
            "or -1 for one per CPU (-2: all but one, ...)"
        )
    if "optuna" not in str(sweeper.get("_target_", "")).lower():
        return
    n_trials = sweeper.get("n_trials")
    if isinstance(n_trials, int) and n_trials < 1:
        raise ConfigError(f"hydra.sweeper.n_trials={n_trials} is invalid; expected an integer >= 1")
    params = [(f"hydra.sweeper.params.{k}", f"{k}={v}") for k, v in (sweeper.get("params") or {}).items()]
    for name, override in params + [(o.partition("=")[0], o) for o in task_overrides]:
        _check_interval(name, override)


def _check_interval(name: str, override: str) -> None:
    """Raise ConfigError when `override` sweeps an interval with low > high."""
    try:
        sweep = OverridesParser.create().parse_override(override).value()
    except Exception:  # noqa: BLE001  (a malformed sweep string is the sweeper's to report)
        return
    if isinstance(sweep, IntervalSweep) and sweep.start > sweep.end:
        value = override.partition("=")[2]
        raise ConfigError(
            f"{name}={value} is invalid; the interval's low end ({sweep.start}) is above "
            f"its high end ({sweep.end})"
        )


def first_group_choices(hydra, overrides: list[str]) -> list[str]:
    """`overrides` with each swept config group at its first choice: the command's base config
    then has a key that every swept option has (`-m dataset=digits,fashion_mnist
    dataset.size_chunk=16`); each job is composed with its own choice (`JobComposer`)."""
    parsed = OverridesParser.create().parse_overrides(overrides)
    repository = hydra.config_loader.repository
    return [
        _first_choice(p) if p.is_sweep_override() and repository.group_exists(p.key_or_group) else o
        for o, p in zip(overrides, parsed)
    ]


def _first_choice(override: Override) -> str:
    if not isinstance(override.value(), ChoiceSweep):
        return override.input_line
    first = next(iter(override.sweep_string_iterator()))
    return f"{override.get_key_element()}={first}"


def defer_group_keys(overrides: list[str], swept: tuple[str, ...]) -> list[str]:
    """`overrides` for Hydra's launch of a planned sweep: a value for a key inside a swept
    config group (`dataset.size_chunk=16` with `dataset=digits,fashion_mnist`) becomes a sweep
    of one value, `choice(16)`. Hydra then applies it to each job's config rather than to the
    base config (the group's default, which may not have the key); the jobs are the same."""
    groups = [key for key in swept if key in GROUPS]
    deferred = []
    for override in overrides:
        key, _, value = override.partition("=")
        inside = any(key.startswith(f"{group}.") for group in groups)
        plain = value and not key.startswith(("+", "~")) and "," not in value and "(" not in value
        deferred.append(f"{key}=choice({value})" if inside and plain else override)
    return deferred


def _configs(check) -> tuple[dict, ...]:
    return () if check.config is None else (check.config,)


def _plan_info(base: DictConfig, multirun: bool) -> dict:
    """The output dir and launcher of a composed command."""
    key = "hydra.sweep.dir" if multirun else "hydra.run.dir"
    raw = OmegaConf.to_container(base.hydra.sweep if multirun else base.hydra.run)["dir"]
    launcher = base.hydra.runtime.choices.get("hydra/launcher") or "basic"
    n_jobs = base.hydra.launcher.get("n_jobs") if "joblib" in launcher else 1
    if isinstance(n_jobs, int) and n_jobs < 0:  # joblib: -1 is every CPU, -2 all but one, ...
        n_jobs = max(1, (os.cpu_count() or 1) + 1 + n_jobs)
    return {
        "multirun": multirun,
        "output_dir": _selected_path(base, key),
        "fresh": "${now:" in str(raw),
        "launcher": str(launcher),
        "parallel": n_jobs if isinstance(n_jobs, int) and n_jobs > 0 else 1,
    }


def _plan_sweep(
    hydra, config_name: str, base: DictConfig, overrides: list[str], data: DataFiles | None
) -> Plan:
    composer = JobComposer(hydra, config_name, [o for o in overrides if _is_hydra(o)])
    jobs, swept = expand_sweep(base, [o for o in overrides if not _is_hydra(o)])
    budget = for_launcher(OmegaConf.to_container(base.hydra.launcher), len(jobs))
    errors, finished, configs = [], set(), []
    sweep_dir = _selected_path(base, "hydra.sweep.dir")
    numbered = OmegaConf.to_container(base.hydra.sweep)["subdir"] == "${hydra.job.num}"
    for num, job in enumerate(jobs):
        job_dir = sweep_dir / str(num) if sweep_dir and numbered else None
        check = inspect_job(composer.compose, job, job_dir, data, budget)
        if check.error:
            shown = " ".join(o for o in job if o.split("=", 1)[0] in swept)
            errors.append(f"job {num} ({shown}): {check.error}")
        elif check.finished:
            finished.add(num)
        configs += _configs(check)
    order = [k for k in dict.fromkeys(o.split("=", 1)[0] for job in jobs for o in job) if k in swept]
    return Plan(errors, jobs, frozenset(finished), swept=tuple(order), configs=tuple(configs))


def missing_data(configs) -> list[str]:
    """One line per dataset (and folder) of `configs` whose files are missing."""
    data, lines = DataFiles(), []
    for cfg in configs:
        try:
            data.check(cfg["dataset"])
        except MissingData as err:
            if str(err) not in lines:
                lines.append(str(err))
    return lines


class MissingData(ConfigError):
    """A dataset's files are missing (and download=false): no job of the command can run."""


class DataFiles:
    """Checks that the files of each dataset exist, once per (dataset, folder)."""

    def __init__(self):
        self.checked: dict[tuple, str | None] = {}

    def check(self, dataset: dict) -> None:
        key = (dataset["name"], dataset.get("data_dir"), dataset.get("download"))
        if key not in self.checked:
            try:
                check_files(**dataset)
                self.checked[key] = None
            except FileNotFoundError as err:
                self.checked[key] = f"dataset: {err}"
        if self.checked[key]:
            raise MissingData(self.checked[key])


def _selected_path(cfg: DictConfig, key: str) -> Path | None:
    """The output dir `key` resolves to now (None when it cannot be resolved yet)."""
    try:
        return Path(str(OmegaConf.select(cfg, key)))
    except Exception:  # noqa: BLE001  (an interpolation only a running job can resolve)
        return None


class JobComposer:
    """The configs of a sweep's jobs: composed once per choice of config groups, then each
    job's value overrides applied as Hydra applies them (after the defaults list), so a grid
    of hundreds of jobs composes in seconds."""

    def __init__(self, hydra, config_name: str, hydra_overrides: list[str]):
        self.hydra, self.config_name, self.hydra_overrides = hydra, config_name, hydra_overrides
        self.composed: dict[tuple, DictConfig | Exception] = {}

    def compose(self, job: list[str]) -> DictConfig:
        parsed = OverridesParser.create().parse_overrides(job)
        is_group = [self.hydra.config_loader.repository.group_exists(p.key_or_group) for p in parsed]
        groups = tuple(o for o, g in zip(job, is_group) if g)
        if groups not in self.composed:
            try:
                cfg = self.hydra.compose_config(
                    self.config_name, self.hydra_overrides + list(groups), run_mode=RunMode.MULTIRUN
                )
                with open_dict(cfg):
                    del cfg["hydra"]
                self.composed[groups] = cfg
            except Exception as err:  # noqa: BLE001  (raised again for every job it concerns)
                self.composed[groups] = err
        base = self.composed[groups]
        if isinstance(base, Exception):
            raise base
        cfg = copy.deepcopy(base)
        values = [p for p, g in zip(parsed, is_group) if not g]
        try:
            ConfigLoaderImpl._apply_overrides_to_config(values, cfg)
        except OmegaConfBaseException as err:
            raise ConfigCompositionException(str(err)) from err
        strict_booleans(cfg, [o for o, g in zip(job, is_group) if not g])
        return cfg


def _initialize(config_dir: str):
    """Hydra's compose API on a config dir, or on a package (`pkg://tpri.conf`, a wheel)."""
    if config_dir.startswith("pkg://"):
        return initialize_config_module(config_module=config_dir.removeprefix("pkg://"), version_base="1.3")
    return initialize_config_dir(config_dir=str(Path(config_dir).resolve()), version_base="1.3")


def _is_hydra(override: str) -> bool:
    return override.lstrip("+~").startswith("hydra")


def hydra_sweeps(overrides: list[str]) -> None:
    """A sweep of one of Hydra's own keys is refused by name (Hydra would refuse it later, in
    two lines); a sweeper's parameter is set by quoting its value."""
    try:
        parsed = OverridesParser.create().parse_overrides(overrides)
    except Exception:  # noqa: BLE001  (a malformed override is reported by the composition)
        return
    for override in parsed:
        if override.is_hydra_override() and override.is_sweep_override():
            key, _, value = override.input_line.partition("=")
            hint = (
                f"; to set a sweeper's parameter, quote the value: \"{key}='{value}'\""
                if key.startswith("hydra.sweeper.params.")
                else "; give one value"
            )
            raise ConfigError(f"{override.input_line}: Hydra's own keys cannot be swept{hint}")


def null_groups(overrides: list[str]) -> None:
    """A required config group set to null (`optimizer=null`) is refused by name."""
    for override in overrides:
        key, _, value = override.partition("=")
        if key.lstrip("+~") in GROUPS and "null" in value.split(","):
            group = key.lstrip("+~")
            raise ConfigError(
                f"{group}=null: {group} needs an option; choose one with "
                f"{group}=NAME, NAME one of {sorted(GROUPS[group])}"
            )


def expand_sweep(base: DictConfig, task_overrides: list[str]) -> tuple[list[list[str]], set]:
    """The jobs of a basic sweep (hydra.sweeper.params, then the command line's overrides,
    as Hydra's BasicSweeper combines them) and the keys that vary."""
    params = base.hydra.sweeper.get("params") or {}
    arguments = [f"{k}={v}" for k, v in params.items()] + task_overrides
    parsed: list[Override] = OverridesParser.create().parse_overrides(arguments)
    swept = {o.get_key_element() for o in parsed if o.is_sweep_override()}
    return BasicSweeper.split_arguments(parsed, None)[0], swept


def _single_run(hydra, config_name: str, base: DictConfig, overrides: list[str]) -> DictConfig:
    """The config of a single run: `base` unless a value asks for a sweep (then Hydra's own
    composition reports it)."""
    if any(o.is_sweep_override() for o in OverridesParser.create().parse_overrides(overrides)):
        base = hydra.compose_config(config_name, overrides, run_mode=RunMode.RUN)
    strict_booleans(base, overrides)
    return base


class JobCheck(NamedTuple):
    error: str | None  # the one-line reason the job cannot run
    finished: bool = False  # its dir holds this very run, finished: nothing to launch
    config: dict | None = None  # the job's config when it can run


def check_job(
    compose: Callable[[list[str]], DictConfig], overrides: list[str], job_dir: Path | None = None
) -> str | None:
    """Compose one job (`compose(overrides)`) and check it, and that its dir (when known) holds
    no other run; the one-line reason it cannot run, or None."""
    return inspect_job(compose, overrides, job_dir).error


def inspect_job(
    compose: Callable[[list[str]], DictConfig],
    overrides: list[str],
    job_dir: Path | None = None,
    data: DataFiles | None = None,
    budget: Budget | None = None,
) -> JobCheck:
    """check_job, also telling whether the job's dir holds it finished; with `data`, a dataset
    whose files are missing raises MissingData; resources checked against `budget` (what the
    launcher gives the job; default: this machine)."""
    try:
        plain = plain_config(compose(overrides))
        check_config(plain)
        check_overrides(plain, overrides)
        check_bp_keys(plain, overrides)
        if data is not None:
            data.check(plain["dataset"])
        check_resources(plain, budget=budget)
        if job_dir is not None and job_dir.is_dir():
            rundir = RunDir(job_dir)
            prev = rundir.read_previous()  # reads only
            rundir.check_same_run(plain, prev)
            if plain.get("restart"):  # trained again from scratch: never skipped
                return JobCheck(None, config=plain)
            rundir.check_resumable(plain, prev)
            return JobCheck(None, prev.finished(plain["max_iter"]), plain)
    except MissingData:
        raise
    except ConfigError as err:
        return JobCheck(str(err))
    except RunRefused as err:
        return JobCheck(f"{REFUSED}{err}")
    except Exception as err:  # noqa: BLE001
        return JobCheck(one_line(err))
    return JobCheck(None, config=plain)


BP_STEP_SIZES = "lr=1e-5 for sgd (the paper's BP on temporal order, Nesterov 0.9), lr=1e-3 for adam"


def check_bp_keys(cfg: dict, overrides: list[str]) -> None:
    """Choosing optimizer=sgd or adam on the command line needs its step size there too: the
    default lr is TP's (0.1). Experiments (`experiment=*_bp`) and sweeps set it in their
    configs. (TP-only keys given with a BP optimizer: `tpri.configs.rules.check_overrides`.)"""
    name = cfg["optimizer"]["name"]
    keys = {o.lstrip("+~").split("=", 1)[0] for o in overrides}
    if DIRECTIONS[name] is Backprop and "optimizer" in keys and not keys & {"lr", "optimizer.lr"}:
        raise ConfigError(
            f"optimizer={name} needs its step size on the command line (the default lr={cfg['lr']} "
            f"is TP's): e.g. {BP_STEP_SIZES}"
        )


def strict_booleans(cfg: DictConfig, overrides: list[str]) -> None:
    """OmegaConf reads 'no', 'off', 'y' or 1 as booleans; a command line must say true/false."""
    for override in OverridesParser.create().parse_overrides(overrides):
        key = override.key_or_group
        if override.is_delete() or key.startswith("hydra"):
            continue
        value = override.value()
        if isinstance(value, str) and value.startswith("${"):
            continue
        if isinstance(OmegaConf.select(cfg, key, default=None), bool) and not isinstance(value, bool):
            raise ConfigError(f"{key}={show(value)} is invalid; expected true or false")


LAUNCHERS_HINT = "pip install 'tpri[launchers]'"  # the Hydra plugins of the `launchers` extra
PLUGINS = ("joblib", "submitit", "optuna")


def one_line(err: BaseException) -> str:
    """A composition error as one line naming the full key (see `_one_line`); a launcher or
    sweeper of the `launchers` extra that is not installed names the pip command."""
    line = _one_line(err)
    plugin_group = "hydra/launcher" in line or "hydra/sweeper" in line
    if plugin_group and any(name in line for name in PLUGINS):
        line += f" (the joblib, submitit and Optuna plugins come with: {LAUNCHERS_HINT})"
    return line


def _one_line(err: BaseException) -> str:
    """A composition error as one line naming the full key: the OmegaConf cause when there is
    one (wrong type, unknown key, null where a value is required), else Hydra's message."""
    cause = err
    while cause is not None and not isinstance(cause, OmegaConfBaseException):
        cause = cause.__cause__ or cause.__context__
    if cause is not None and getattr(cause, "full_key", None):
        if isinstance(cause, (ConfigAttributeError, ConfigKeyError)):
            return unknown_key(cause.full_key, _accepted_keys(cause))
        field = _schema_field(cause)
        if isinstance(cause, ValidationError) and field is not None:
            kind, nullable = field
            spec = cause.object_type.__dataclass_fields__[cause.key].metadata.get("spec", Spec())
            expected = accepted(kind, nullable, spec)
            return f"{cause.full_key}={show(cause.value)} is invalid; expected {expected}"
        return f"{cause.full_key}: {str(getattr(cause, 'msg', cause)).splitlines()[0]}"
    if isinstance(err, MissingConfigException) and err.options is not None:
        group = (err.missing_cfg_file or "").rpartition("/")[0]
        return f"{err.missing_cfg_file}: no such config; accepted for {group}: {sorted(err.options)}"
    return " ".join(str(err).split())


def _schema_field(cause) -> tuple[type, bool] | None:
    """(type, nullable) of the schema field an OmegaConf error is about, if it has one."""
    schema = getattr(cause, "object_type", None)
    if not dataclasses.is_dataclass(schema) or cause.key not in schema.__dataclass_fields__:
        return None
    return field_kind(typing.get_type_hints(schema)[cause.key])


def _accepted_keys(cause) -> list[str]:
    schema = getattr(cause, "object_type", None)
    return list(getattr(schema, "__dataclass_fields__", None) or [])


# --- the end of a multirun ----------------------------------------------------------------


FAILED_JOBS = "failed_jobs.txt"  # in the sweep dir: one line per job that failed while running
# which command launched a job (inherited by its workers): each line of FAILED_JOBS starts with
# it, so two multiruns into one sweep dir each list their own failures only
COMMAND_ID = "TPRI_MULTIRUN_ID"


class FailedJobs(Callback):
    """Collects the jobs of a multirun that failed while running (their lines, written by
    `record_failed_job` from whichever process ran them), for tpri.app to list at the end."""

    found: list[str] = []
    sweep_dir: str | None = None  # of the multirun this process launched

    def on_multirun_start(self, config: DictConfig, **kwargs) -> None:
        FailedJobs.sweep_dir = config.hydra.sweep.dir
        os.environ[COMMAND_ID] = f"{socket.gethostname()}-{os.getpid()}-{time.time_ns()}"

    def on_multirun_end(self, config: DictConfig, **kwargs) -> None:
        FailedJobs.found = failed_jobs(config.hydra.sweep.dir, os.environ.get(COMMAND_ID, ""))


def failed_jobs(sweep_dir: str, command: str) -> list[str]:
    """The lines that the jobs of `command` recorded in the sweep dir (others' are left)."""
    path = Path(sweep_dir) / FAILED_JOBS
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return []
    prefix = f"{command}\t"
    return [line.removeprefix(prefix) for line in lines if line.startswith(prefix)]


def record_failed_job(sweep_dir: str, line: str) -> None:
    """Append one job's failure line, tagged with its command (one write in append mode:
    parallel jobs do not mix)."""
    path = Path(sweep_dir) / FAILED_JOBS
    path.parent.mkdir(parents=True, exist_ok=True)
    append_line(f"{os.environ.get(COMMAND_ID, '')}\t{' '.join(line.split())}", path)
