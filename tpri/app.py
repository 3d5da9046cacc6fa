"""Hydra entry point: `python train.py ...` (repo root) or the `tpri-train` console script.

Every job of the command is composed and checked first (`tpri.run.preflight`): a bad value in any
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
import shlex
import sys
from collections import Counter
from pathlib import Path

import hydra
import yaml
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from tpri.analysis.figures.registry import plot_command
from tpri.configs.resources import estimate_memory, estimate_seconds, peak
from tpri.configs.rules import ConfigError, plain_config
from tpri.configs.schema import register_configs
from tpri.configs.source import CONFIG_DIR
from tpri.io import log_handler
from tpri.run import Interrupted, JobFailed, RunContext, RunDirError, RunRefused, preflight, run
from tpri.run.preflight import (
    COMMAND_ID,
    FAILED_JOBS,
    REFUSED,
    FailedJobs,
    Plan,
    failed_jobs,
    one_line,
    record_failed_job,
)
from tpri.run.provenance import mark_command
from tpri.run.rundir import GONE, RunDir, check_output_location, claim_new_dir, find_job_dirs, point_link
from tpri.run.signals import exit_with_launcher, ignore_stray_warnings, in_worker, mark_launcher
from tpri.run.status import FINISHED, counts_line, program, read_job

# Hydra's root logger is at INFO: alembic (imported by Optuna's sweeper, run by MLflow's store)
# would print "setup plugin ..." / migration lines.
logging.getLogger("alembic").setLevel(logging.WARNING)
log = logging.getLogger("tpri")


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


def _fail(message: str, code: int, sweep_dir: str | None) -> str:
    """One line on stderr; a single run exits, a sweep notes the job as failed (listed at its
    end) and goes on with its other jobs. The return value makes Optuna record a failed trial."""
    print(message, file=sys.stderr)
    if sweep_dir is None:
        sys.exit(code)
    record_failed_job(sweep_dir, message)
    return f"failed: {message}"


_busy: list[bool] = []  # a job runs in this process (a worker's launcher watch waits for it)


def run_job(cfg: dict, out: str, context: RunContext, sweep_dir: str | None) -> float | str:
    """Train one job; exit (single run) or return 'failed: reason' (sweep) on failure; the
    final train loss (for sweepers), inf when it did not complete."""
    resume = f"; resume: {resume_command(sweep_dir or out)}"
    _busy.append(True)
    try:
        summary = run(cfg, out, context)
    except ConfigError as err:
        return _fail(f"{context.tag}Invalid configuration: {err}", 2, sweep_dir)
    except RunRefused as err:
        return _fail(f"{context.tag}Refused: {err}", 2, sweep_dir)
    except JobFailed as err:  # a sweep's summary names the command that resumes it
        return _fail(f"{context.tag}{err}{'' if sweep_dir else resume}", 1, sweep_dir)
    except RunDirError as err:
        return _fail(f"{context.tag}{err}", 1, sweep_dir)
    except Interrupted as err:
        with contextlib.suppress(OSError):  # SIGHUP: the terminal may be gone
            print(f"{context.tag}{err}{resume}", file=sys.stderr)
        sys.exit(err.exit_code)
    finally:
        _busy.clear()
    loss = (summary.get("final") or {}).get("train_loss")
    return float("inf") if loss is None or summary["status"] != "completed" else loss


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="config")
def _hydra_main(cfg: DictConfig) -> float | str:
    """Train one job into Hydra's output dir (see `run_job`); in a sweep, one line when the
    job starts in a worker and one counting the jobs done when it ends."""
    context = _context()
    hc = HydraConfig.get()
    sweep_dir = hc.sweep.dir if context.tag else None
    if in_worker():
        exit_with_launcher(lambda: bool(_busy))
        shown = " ".join(context.overrides)
        log.info("%sstarted in process %d: %s", context.tag, os.getpid(), shown)
    try:
        return run_job(plain_config(cfg), hc.runtime.output_dir, context, sweep_dir)
    finally:
        if sweep_dir is not None:
            log.info("%s%s", context.tag, jobs_done(Path(sweep_dir)))


def jobs_done(sweep_dir: Path) -> str:
    """`k of N jobs done`: the jobs of the sweep (N from its launcher) no longer running."""
    total = int(os.environ.get(SWEEP_JOBS_ENV) or 0)
    dirs = [sweep_dir / str(n) for n in range(total)] if total else find_job_dirs(sweep_dir)
    done = sum(read_job(d)["status"] in FINISHED for d in dirs if d.is_dir())
    return f"{done} of {total or len(dirs)} jobs done"


SWEEP_JOBS_ENV = "TPRI_SWEEP_JOBS"  # the number of jobs of the sweep, for its workers


def resume_command(directory: str | Path) -> str:
    """The command that resumes a job dir or a sweep dir, as the user started tpri (a dir
    below the current one relative to it)."""
    path = Path(directory)
    if path.is_absolute() and path.is_relative_to(Path.cwd()):
        path = path.relative_to(Path.cwd())
    return f"{program()} --resume {shlex.quote(str(path))}"


# --- the command line ------------------------------------------------------------------------


def _print_job_configs(plan: Plan, cfg: str) -> None:
    """`-m --cfg job`: the config of each job of the sweep (Optuna: the study's, its swept keys
    at their defaults), resolved, then exit 0; `--cfg hydra|all` with -m: one line, exit 2."""
    if cfg != "job":
        print(f"--cfg {cfg} with -m: expected --cfg job (each job's config), or drop -m", file=sys.stderr)
        sys.exit(2)
    jobs = plan.jobs if plan.jobs is not None else [["(the study's config; its trials are drawn as it runs)"]]
    for num, (job, config) in enumerate(zip(jobs, plan.configs)):
        print(f"# job {num}: {' '.join(job)}")
        print(OmegaConf.to_yaml(config), end="")
    sys.exit(0)


def _parse(argv: list[str]):
    from hydra._internal.utils import get_args_parser

    return get_args_parser().parse_args(argv)


def _check_command(argv: list[str], dry_run: bool = False) -> tuple[list[str], Plan | None]:
    """Compose and check every job the command would run; exit 2 listing the invalid ones.
    Returns the command for Hydra (`argv`, with the planned sweeper for a basic sweep: it
    launches the checked jobs without composing each again, and not the finished ones:
    hydra_plugins/tpri_plugins/sweeper.py) and the plan, None for commands that train nothing
    (--help, --info, --cfg, another config)."""
    args = _parse(argv)
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
        return argv, None
    plan = preflight.plan(args.overrides, args.multirun, CONFIG_DIR, check_data=not dry_run)
    errors = [] if dry_run else plan.errors  # a dry run lists them with the plan
    if len(errors) == 1 and not errors[0].startswith("job "):
        label = "" if errors[0].startswith(REFUSED) else "Invalid configuration: "
        print(f"{label}{errors[0]}", file=sys.stderr)
    elif errors:
        refused = all(e.split("): ", 1)[-1].startswith(REFUSED) for e in errors)
        label = "Refused" if refused else "Invalid configuration"
        print(f"{label}: {len(errors)} invalid job(s); no job was started", file=sys.stderr)
        print("\n".join(errors), file=sys.stderr)
    if errors:
        sys.exit(2)
    if args.cfg and plan.multirun:  # Hydra shows one config, never a sweep's: each job's here
        _print_job_configs(plan, args.cfg)
    preflight.CHECKED = plan
    if plan.jobs is not None and not any(o.lstrip("+~").startswith("hydra/sweeper=") for o in args.overrides):
        at = argv.index(args.overrides[0]) if args.overrides else len(argv)  # among the overrides
        argv = [*argv[:at], "hydra/sweeper=planned", *argv[at:]]
        deferred = dict(zip(args.overrides, preflight.defer_group_keys(args.overrides, plan.swept)))
        argv = [deferred.get(a, a) for a in argv]
    return argv, None if args.cfg else plan


def _pin_output_dir(argv: list[str], plan: Plan) -> tuple[list[str], Plan]:
    """Fix the command's output dir before Hydra starts: a new timestamped dir is created now
    (unique: `-2`, `-3` appended when another command took it) and linked as outputs/latest
    (outputs/multirun/latest); the first line printed names it and how to resume."""
    key = "hydra.sweep.dir" if plan.multirun else "hydra.run.dir"
    given = any(a.split("=", 1)[0] == key for a in argv)
    out = plan.output_dir
    if out is None:
        return argv, plan
    try:
        if plan.fresh and not given:
            check_output_location(out)
            out = claim_new_dir(out)
            group = out.parent.parent  # outputs/runs/<date>/<time>: outputs/runs
            point_link((group if plan.multirun else group.parent) / "latest", out)
    except RunDirError as err:
        print(err, file=sys.stderr)
        sys.exit(1)
    plan = plan._replace(output_dir=out)  # the dir claimed
    print(first_line(out, plan), flush=True)
    return (argv if given else [*argv, f"{key}={_override_value(out)}"]), plan


def _override_value(path: Path) -> str:
    text = str(path)
    return text if re.fullmatch(r"[\w./-]+", text) else "'" + text.replace("'", "\\'") + "'"


def first_line(out: Path, plan: Plan) -> str:
    if not plan.multirun:
        return f"run dir: {out}  (stopped? resume: {resume_command(out)})"
    jobs = "jobs drawn by the sweeper" if plan.jobs is None else f"{len(plan.jobs)} jobs"
    at_a_time = f", {plan.parallel} at a time" if plan.parallel > 1 else ""
    return (
        f"sweep dir: {out}  ({jobs}, launcher {plan.launcher}{at_a_time}; "
        f"stopped? resume: {resume_command(out)})"
    )


def sweep_summary(sweep_dir: Path, plan: Plan) -> str:
    """The closing lines of a sweep: counts per status, the dir, what to run next."""
    os.environ.pop(SWEEP_JOBS_ENV, None)
    dirs = [sweep_dir / str(n) for n in range(len(plan.jobs or []))] or find_job_dirs(sweep_dir)
    counts = Counter(read_job(d)["status"] for d in dirs if d.is_dir())
    checkout = program() != "tpri-train"
    collect = "python scripts/collect.py" if checkout else "tpri-collect"
    lines = [
        f"sweep done: {counts_line(counts, FINISHED[:4])}; {sweep_dir}",
        f"  table:   tpri-status {sweep_dir}",
        f"  collect: {collect} {sweep_dir}",
        f"  plot:    {plot_command(sweep_name(sweep_dir), sweep_dir)}",
    ]
    if counts[GONE] or counts["interrupted"] or counts["failed"]:
        lines.append(f"  resume:  {resume_command(sweep_dir)}")
    return "\n".join(lines)


def sweep_name(sweep_dir: Path) -> str | None:
    """The `sweep=NAME` config of a sweep dir (its multirun.yaml), if any."""
    try:
        record = yaml.safe_load((sweep_dir / "multirun.yaml").read_text())
        return record["hydra"]["runtime"]["choices"].get("sweep")
    except Exception:  # noqa: BLE001  (no record: a plain -m sweep)
        return None


def print_plan(plan: Plan) -> None:
    """What `--dry-run` prints: jobs, varying keys, estimated time and memory; nothing runs."""
    print(dry_run_text(plan))


def dry_run_text(plan: Plan) -> str:
    where = f"into {plan.output_dir}" if plan.output_dir else ""
    if not plan.multirun:
        head = f"dry run: 1 job {where}"
    elif plan.jobs is None:
        head = f"dry run: a sweep whose jobs the sweeper draws as it runs, {where}"
    else:
        head = f"dry run: {len(plan.jobs)} jobs {where}, launcher {plan.launcher}, {plan.parallel} at a time"
    lines = [head.replace("  ", " ").rstrip()]
    for key in plan.swept:
        values = [o.split("=", 1)[1] for job in plan.jobs or [] for o in job if o.startswith(key + "=")]
        values = list(dict.fromkeys(values))
        lines.append(f"  {key}: {len(values)} values: {', '.join(values)}")
    seconds = [estimate_seconds(c) for c in plan.configs]
    memory = [peak(estimate_memory(c)) for c in plan.configs]
    if seconds:
        lines.append(f"  time per job: {_span(seconds, _duration)} (one CPU thread; rough)")
        lines.append(f"  memory per job: {_span(memory, _bytes)} (torch's runtime included)")
        total = sum(seconds)
        wall = total / max(1, min(plan.parallel, len(seconds)))
        lines.append(
            f"  total: {_duration(total)} of CPU time, about {_duration(wall)} at "
            f"{plan.parallel} at a time; peak memory about "
            f"{_bytes(sum(sorted(memory)[-plan.parallel :]))}"
        )
    lines += [f"  before running: {line}" for line in preflight.missing_data(plan.configs)]
    if plan.errors:
        lines.append(f"  {len(plan.errors)} job(s) would be refused now (not in the estimates), e.g.:")
        lines += [f"    {line}" for line in plan.errors[:3]]
    lines.append("nothing was run or created (run the same command without --dry-run)")
    return "\n".join(lines)


def _span(values: list[float], fmt) -> str:
    low, high = min(values), max(values)
    if fmt(low) == fmt(high):
        return fmt(low)
    return f"{fmt(low)} .. {fmt(high)} (median {fmt(sorted(values)[len(values) // 2])})"


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _bytes(n: float) -> str:
    return f"{n / 1e9:.1f} GB" if n >= 1e8 else f"{n / 1e6:.0f} MB"


# --- resume ------------------------------------------------------------------------------------


def _resume(directory: str, extra: list[str]) -> list[str] | None:
    """`--resume DIR [key=value ...]`: a sweep dir (holding multirun.yaml) becomes the Hydra
    command that reruns it into DIR (returned); a job dir is resumed here with its recorded
    config (the extra values on top, e.g. max_iter=4000), and the process exits."""
    path = Path(directory)
    if path.is_symlink():  # outputs/latest: the dir it names, in every record
        path = Path(os.path.relpath(path.resolve()))
    if (path / "multirun.yaml").is_file():
        return _sweep_argv(path, extra)
    record = path / ".hydra" / "config.yaml"
    try:
        cfg = yaml.safe_load(record.read_text())
        assert isinstance(cfg, dict)
    except Exception:  # noqa: BLE001
        print(
            f"--resume {directory}: no readable {record}; expected a job dir (holding .hydra/) "
            "or a sweep dir (holding multirun.yaml)",
            file=sys.stderr,
        )
        sys.exit(2)
    try:
        cfg = OmegaConf.to_container(OmegaConf.merge(cfg, OmegaConf.from_dotlist(extra)))
    except Exception as err:  # noqa: BLE001
        print(f"--resume {directory}: {' '.join(extra)}: {one_line(err)}", file=sys.stderr)
        sys.exit(2)
    overrides = _read_list(path / ".hydra" / "overrides.yaml")
    hydra_file = path / ".hydra" / "hydra.yaml"
    hydra_yaml = hydra_file.read_text() if hydra_file.is_file() else None
    _log_to(path / "train.log")
    print(f"run dir: {path}  (resuming; stopped? resume: {resume_command(path)})", flush=True)
    run_job(cfg, str(path), RunContext(overrides, hydra_yaml), None)
    sys.exit(0)


def _sweep_argv(path: Path, extra: list[str]) -> list[str]:
    record = yaml.safe_load((path / "multirun.yaml").read_text())
    overrides = record["hydra"]["overrides"]
    skip = ("hydra.sweep.dir", "hydra.run.dir", "hydra.mode")
    hydra_overrides = [o for o in overrides["hydra"] if o.split("=", 1)[0] not in skip]
    return ["-m", *hydra_overrides, *overrides["task"], *extra, f"hydra.sweep.dir={_override_value(path)}"]


def _read_list(path: Path) -> list[str]:
    try:
        items = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError):
        return []
    return [str(i) for i in items] if isinstance(items, list) else []


def _log_to(log_file: Path) -> None:
    """Hydra's job logging for a run started without Hydra: the console and `train.log`."""
    fmt = logging.Formatter("[%(asctime)s][%(name)s][%(levelname)s] - %(message)s")
    root = logging.getLogger()
    root.setLevel(logging.INFO)
    for handler in (logging.StreamHandler(sys.stdout), log_handler(log_file)):
        handler.setFormatter(fmt)
        root.addHandler(handler)


def _pop_flag(argv: list[str], flag: str, takes_value: bool = False) -> tuple[list[str], str | bool | None]:
    """`argv` without `flag` (and its value: `--flag V` or `--flag=V`), and the value found."""
    rest, value = [], None
    args = iter(argv)
    for arg in args:
        if arg == flag:
            value = next(args, None) if takes_value else True
            if takes_value and value is None:
                print(f"{flag}: expected a value ({flag} DIR)", file=sys.stderr)
                sys.exit(2)
        elif takes_value and arg.startswith(flag + "="):
            value = arg.split("=", 1)[1]
        else:
            rest.append(arg)
    return rest, value


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
        if FailedJobs.sweep_dir is not None and str(err) == OPTUNA_NOTHING_COMPLETED:
            _no_trial_completed(Path(FailedJobs.sweep_dir))
        if type(err).__name__ != "TerminatedWorkerError" or FailedJobs.sweep_dir is None:
            run_and_report(functools.partial(_reraise, err))  # Hydra's own report of it
            raise
        _lost_workers(err, Path(FailedJobs.sweep_dir))
    finally:
        _restore_env(FULL_ERROR, user_choice)


FULL_ERROR = "HYDRA_FULL_ERROR"
# what Optuna raises when the sweeper asks for the best trial of a study none of whose completed
OPTUNA_NOTHING_COMPLETED = "No trials are completed yet."


def _no_trial_completed(sweep_dir: Path) -> None:
    """One line for an Optuna study whose every trial failed (no best value), exit 1."""
    failed = failed_jobs(str(sweep_dir), os.environ.get(COMMAND_ID, ""))
    first = f"; the first: {failed[0]}" if failed else ""
    print(
        f"sweep {sweep_dir}: no trial of the study completed, so it has no best value "
        f"({len(failed)} failed{first}; all in {sweep_dir / FAILED_JOBS})",
        file=sys.stderr,
    )
    sys.exit(1)


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
    resume = resume_command(sweep_dir)
    reason = f"its worker process died{how}; resume: {resume}"
    lost = [job.name for job in sorted(sweep_dir.iterdir()) if job.is_dir() and RunDir(job).mark_lost(reason)]
    jobs = ", ".join(lost) if lost else "none left running"
    print(
        f"sweep {sweep_dir} stopped: a worker process died{how}; jobs recorded failed: {jobs}; "
        f"resume: {resume}",
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


def config_groups() -> dict[str, list[str]]:
    """The config groups a user picks from and their options, read from the configs themselves
    (`conf/` or the installed `tpri.conf`): `{"dataset": ["adding", ...], "hydra/launcher": [...]}`."""
    import importlib.resources

    root = importlib.resources.files("tpri.conf") if CONFIG_DIR.startswith("pkg://") else Path(CONFIG_DIR)
    groups: dict[str, list[str]] = {}

    def walk(folder, prefix: str) -> None:
        for entry in sorted(folder.iterdir(), key=lambda e: e.name):
            if entry.is_dir() and not entry.name.startswith(("_", ".")):
                walk(entry, f"{prefix}{entry.name}/")
            elif entry.name.endswith(".yaml") and prefix:
                groups.setdefault(prefix.rstrip("/"), []).append(entry.name[: -len(".yaml")])

    walk(root, "")
    return groups


def print_help() -> None:
    """`--help`: tpri's own flags and the config groups users choose from (Hydra's generic text,
    which also lists the internal schema/* groups, stays under --hydra-help)."""
    prog = program()
    lines = [
        f"{prog}: train an RNN with target propagation (TP) or back-propagation (BP).",
        "",
        f"usage: {prog} [--resume DIR] [--dry-run] [-m] [key=value ...]",
        "",
        "  key=value       override a config key or pick a group option (dataset=mnist lr=1e-3)",
        "  -m, --multirun  sweep: every combination of comma-separated values (-m reg=0.1,1,10)",
        "  --resume DIR    resume the job or sweep dir DIR with its recorded config (extra key=value on top)",
        "  --dry-run       print the jobs, the varying keys and the estimated time and memory; run nothing",
        "  --cfg job       print the composed config (checked like a run); --info: where configs are read",
        "  --hydra-help    Hydra's own options",
        "",
        "config groups (pick one option: group=option):",
    ]
    lines += [f"  {group}: {', '.join(options)}" for group, options in config_groups().items()]
    lines += ["", "every key is commented in the configs; README.md has examples"]
    print("\n".join(lines))


def main() -> None:
    """Console entry: check every job, then hand the command to Hydra; exit 1 after a
    multirun in which some jobs failed, listing them. Hydra's argparse rejects flags between
    overrides, so the value-less flags `-m` / `--multirun` are moved to the front:
    `train.py a=1 -m b=1,2` works.

    Own flags: `--resume DIR` (a job dir or a sweep dir, with its recorded config) and
    `--dry-run` (the jobs, varying keys and estimated time and memory; nothing is run)."""
    ignore_stray_warnings()  # a time-limit warning before or after training ends nothing
    # stdout closed by a reader (`train.py | head -1`): the job goes on, its log lines stay in
    # train.log, and logging does not print a traceback for each line it cannot show
    logging.raiseExceptions = False
    _expose_plugins()
    register_configs()
    mark_command(sys.argv)
    argv, resume = _pop_flag(sys.argv[1:], "--resume", takes_value=True)
    argv, dry_run = _pop_flag(argv, "--dry-run")
    if "--help" in argv or "-h" in argv:
        with contextlib.suppress(BrokenPipeError):
            print_help()
        _quiet_if_stdout_closed()
        return
    if resume is not None:
        argv = _resume(resume, argv)
    flags = [a for a in argv if a in ("-m", "--multirun")]
    argv = flags + [quote_non_ascii(a) for a in argv if a not in ("-m", "--multirun")]
    argv, plan = _check_command(argv, bool(dry_run))
    if dry_run:
        if plan is None:
            print("--dry-run: expected a training command (not --cfg, --help, --info)", file=sys.stderr)
            sys.exit(2)
        print_plan(plan)
        return
    if plan is not None:
        argv, plan = _pin_output_dir(argv, plan)
        if plan.multirun:
            os.environ[SWEEP_JOBS_ENV] = str(len(plan.jobs or []))
    sys.argv[1:] = argv
    mark_launcher()
    FailedJobs.found, FailedJobs.sweep_dir = [], None
    try:
        _launch()
    except BrokenPipeError:  # the reader of stdout left (`--hydra-help | head -1`): nothing lost
        _quiet_if_stdout_closed()
        return
    except KeyboardInterrupt:
        where = f"; resume: {resume_command(plan.output_dir)}" if plan and plan.output_dir else ""
        print(f"interrupted{where}", file=sys.stderr)
        sys.exit(130)
    if plan is not None and plan.multirun and plan.output_dir is not None:
        print(sweep_summary(Path(_selected(argv, plan)), plan), flush=True)
    _quiet_if_stdout_closed()
    if FailedJobs.found:
        print(f"{len(FailedJobs.found)} job(s) failed:", file=sys.stderr)
        print("\n".join(f"  {line}" for line in FailedJobs.found), file=sys.stderr)
        sys.exit(1)


def _selected(argv: list[str], plan: Plan) -> str:
    """The sweep dir the command ran into (the pinned or given hydra.sweep.dir)."""
    for arg in reversed(argv):
        if arg.startswith("hydra.sweep.dir="):
            return arg.split("=", 1)[1].strip("'")
    return str(plan.output_dir)


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
