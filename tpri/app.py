"""Hydra entry point: `python train.py ...` (repo root) or the `tpri-train` console script.

Every job of the command is composed and checked first (`tpri.preflight`): a bad value in any
job of a sweep stops the command before any job starts, one line per bad job.

Exit codes: 0 done (completed, diverged or skipped), 1 a job failed or its directory could
not be used (in a multirun: some jobs did, listed at the end; the others ran), 2 a bad
configuration or a refused rerun, 128 + the signal's number when a signal stopped it after a
checkpoint (143 for SIGUSR2): rerunning resumes.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import logging
import os
import re
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from tpri import preflight
from tpri.config import ConfigError, plain_config
from tpri.preflight import FailedJobs, record_failed_job
from tpri.run import Interrupted, JobFailed, RunContext, RunDirError, RunRefused, run
from tpri.run.provenance import mark_command
from tpri.run.rundir import RunDir
from tpri.run.signals import ignore_stray_warnings, mark_launcher
from tpri.schema import register_configs


def config_source() -> str:
    """Where Hydra reads the configs (`tpri-train --info` shows it): the copy of conf/ shipped in a
    wheel as the package tpri.conf, else the conf/ beside this package in a checkout (python
    train.py, editable install)."""
    here = Path(__file__).resolve().parent
    if (here / "conf" / "config.yaml").is_file():
        return "pkg://tpri.conf"
    return str(here.parent / "conf")


CONFIG_DIR = config_source()
# Hydra's root logger is at INFO: alembic (imported by Optuna's sweeper, run by MLflow's store)
# would print "setup plugin ..." / migration lines.
logging.getLogger("alembic").setLevel(logging.WARNING)


def _context() -> RunContext:
    hc = HydraConfig.get()
    sweep = hc.mode == RunMode.MULTIRUN
    return RunContext(
        overrides=list(hc.overrides.task),
        hydra_yaml=OmegaConf.to_yaml(OmegaConf.create({"hydra": hc})),
        tag=f"[job {_job_number(hc)}] " if sweep else "",
    )


def _job_number(hc) -> str:
    """The number of a sweep's job: its dir's (the planned sweeper pins hydra.sweep.subdir to
    the job's number when it leaves finished jobs out), else Hydra's count."""
    subdir = str(hc.sweep.subdir)
    return subdir if subdir.isdigit() else str(hc.job.num)


def _fail(message: str, code: int, sweep: bool) -> str:
    """One line on stderr; a single run exits, a sweep notes the job as failed (listed at its
    end) and goes on with its other jobs. The return value makes Optuna record a failed trial."""
    print(message, file=sys.stderr)
    if not sweep:
        sys.exit(code)
    record_failed_job(HydraConfig.get().sweep.dir, message)
    return f"failed: {message}"


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="config")
def _hydra_main(cfg: DictConfig) -> float | str:
    """Train one job into Hydra's output dir; returns the final train loss (for sweepers),
    inf when it diverged, and in a sweep the text 'failed: reason' when it failed."""
    context = _context()
    sweep = bool(context.tag)
    try:
        summary = run(plain_config(cfg), HydraConfig.get().runtime.output_dir, context)
    except ConfigError as err:
        return _fail(f"{context.tag}Invalid configuration: {err}", 2, sweep)
    except RunRefused as err:
        return _fail(f"{context.tag}Refused: {err}", 2, sweep)
    except (RunDirError, JobFailed) as err:
        return _fail(f"{context.tag}{err}", 1, sweep)
    except Interrupted as err:
        with contextlib.suppress(OSError):  # SIGHUP: the terminal may be gone
            print(f"{context.tag}{err}", file=sys.stderr)
        sys.exit(err.exit_code)
    loss = (summary.get("final") or {}).get("train_loss")
    return float("inf") if loss is None or summary["status"] != "completed" else loss


def _check_command(argv: list[str]) -> list[str]:
    """Compose and check every job the command would run; exit 2 listing the invalid ones.
    Returns the command for Hydra: `argv`, with the planned sweeper for a basic sweep (it
    launches the checked jobs without composing each again, and not the finished ones:
    hydra_plugins/tpri_plugins/sweeper.py)."""
    from hydra._internal.utils import get_args_parser

    args = get_args_parser().parse_args(argv)
    other = (
        args.help
        or args.hydra_help
        or args.info
        or args.shell_completion
        or args.config_path
        or args.config_name
        or args.config_dir
        or args.experimental_rerun
    )
    if other:  # not a training command (--cfg is checked: it shows what would run), or another config
        return argv
    plan = preflight.plan(args.overrides, args.multirun, CONFIG_DIR)
    errors = plan.errors
    if len(errors) == 1 and not errors[0].startswith("job "):
        print(f"Invalid configuration: {errors[0]}", file=sys.stderr)
    elif errors:
        print(f"Invalid configuration: {len(errors)} invalid job(s); no job was started", file=sys.stderr)
        print("\n".join(errors), file=sys.stderr)
    if errors:
        sys.exit(2)
    preflight.CHECKED = plan
    if plan.jobs is None or any(o.lstrip("+~").startswith("hydra/sweeper=") for o in args.overrides):
        return argv
    at = argv.index(args.overrides[0]) if args.overrides else len(argv)  # among the overrides
    return [*argv[:at], "hydra/sweeper=planned", *argv[at:]]


def _launch() -> None:
    """Hand the command to Hydra. A worker process of a parallel launcher (joblib) that died
    (SIGKILL, the OOM killer) ends the sweep: its jobs left `running` with no process are
    recorded `failed`, and one line says which, exit 1; any other error Hydra reports as
    it always does."""
    from hydra._internal.utils import run_and_report

    user_choice = os.environ.get(FULL_ERROR)
    os.environ[FULL_ERROR] = "1"  # Hydra raises instead of printing: a lost worker is ours to report
    # after a lost worker, multiprocessing's resource tracker (a child) would warn of the
    # semaphores the dead worker held: two lines about an internal detail
    quiet = "ignore:resource_tracker:UserWarning"
    os.environ["PYTHONWARNINGS"] = ",".join(filter(None, [os.environ.get("PYTHONWARNINGS"), quiet]))
    try:
        _hydra_main()
    except Exception as err:
        _restore_env(FULL_ERROR, user_choice)
        if type(err).__name__ != "TerminatedWorkerError" or FailedJobs.sweep_dir is None:
            run_and_report(functools.partial(_reraise, err))  # Hydra's own report of it
            raise
        _lost_workers(err, Path(FailedJobs.sweep_dir))
    finally:
        _restore_env(FULL_ERROR, user_choice)


FULL_ERROR = "HYDRA_FULL_ERROR"


def _reraise(err: BaseException):
    raise err


def _restore_env(name: str, value: str | None) -> None:
    if value is None:
        os.environ.pop(name, None)
    else:
        os.environ[name] = value


def _lost_workers(err: Exception, sweep_dir: Path) -> None:
    """One line naming the jobs a dead worker took down (recorded `failed`), exit 1."""
    codes = re.search(r"exit codes of the workers are \{(.*?)\}", str(err))
    how = f" ({codes[1]})" if codes else ""
    reason = f"its worker process died{how}; rerun the same command to resume it"
    lost = [job.name for job in sorted(sweep_dir.iterdir()) if job.is_dir() and RunDir(job).mark_lost(reason)]
    jobs = ", ".join(lost) if lost else "none left running"
    print(
        f"sweep {sweep_dir} stopped: a worker process died{how}; jobs recorded failed: {jobs}; "
        "rerun the same command to resume them",
        file=sys.stderr,
    )
    sys.exit(1)


def _expose_plugins() -> None:
    """Hydra finds plugins by scanning the folders of the `hydra_plugins` namespace on
    sys.path; an editable install (pip install -e .) maps tpri's plugins without putting their
    folder there, so it is added (a checkout or a wheel has it already)."""
    spec = importlib.util.find_spec("hydra_plugins.tpri_plugins")
    if spec is None or spec.origin is None:
        return
    root = str(Path(spec.origin).parents[2])
    if root not in sys.path:
        sys.path.append(root)


def main() -> None:
    """Console entry: check every job, then hand the command to Hydra; exit 1 after a
    multirun in which some jobs failed, listing them. Hydra's argparse rejects flags between
    overrides, so the value-less flags `-m` / `--multirun` are moved to the front:
    `train.py a=1 -m b=1,2` works."""
    ignore_stray_warnings()  # a time-limit warning before or after training ends nothing
    # stdout closed by a reader (`train.py | head -1`): the job goes on, its log lines stay in
    # train.log, and logging does not print a traceback for each line it cannot show
    logging.raiseExceptions = False
    _expose_plugins()
    register_configs()
    mark_command(sys.argv)
    flags = [a for a in sys.argv[1:] if a in ("-m", "--multirun")]
    sys.argv[1:] = flags + [quote_non_ascii(a) for a in sys.argv[1:] if a not in ("-m", "--multirun")]
    sys.argv[1:] = _check_command(sys.argv[1:])
    mark_launcher()
    FailedJobs.found, FailedJobs.sweep_dir = [], None
    try:
        _launch()
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    _quiet_if_stdout_closed()
    if FailedJobs.found:
        print(f"{len(FailedJobs.found)} job(s) failed:", file=sys.stderr)
        print("\n".join(f"  {line}" for line in FailedJobs.found), file=sys.stderr)
        sys.exit(1)


def quote_non_ascii(arg: str) -> str:
    """`key=/data/ünï/run` -> `key='/data/ünï/run'`: Hydra's override grammar takes non-ASCII
    characters (a path in any language, under any locale) only inside quotes. Values that
    are already quoted, or that sweep, interpolate or nest (`,[]{}$'"`), are left as typed."""
    key, sep, value = arg.partition("=")
    if not sep or arg.startswith("-") or value.isascii() or any(c in value for c in ",[]{}()$'\"\\"):
        return arg
    return f"{key}='{value}'"


def _quiet_if_stdout_closed() -> None:
    """When the reader of stdout is gone, point stdout at /dev/null: Python's final flush
    would otherwise print 'Exception ignored ... BrokenPipeError'."""
    try:
        sys.stdout.flush()
    except (BrokenPipeError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)


if __name__ == "__main__":
    main()
