"""`tpri-status [DIR ...]`: the jobs below a dir (default `outputs`) as a table in the terminal.

    $ tpri-status outputs/multirun/latest
    job  status                      iteration   best test_accuracy  final  lock
    0    completed                   2000/2000   1 @800              0.24   -
    1    interrupted (process gone)  1400/2000   1 @800              1      81234 on host (gone)

One row per job dir (a dir holding `.hydra/` or `summary.json`): its status as readers report
it (`running` only while the process its `run.lock` names is alive), the iteration reached out
of `max_iter`, the best and the final value of its best metric (test accuracy; test loss for
regression and text), and the lock holder. Reads files only (no pandas, no torch tensors).
"""

from __future__ import annotations

import json
import math
import sys
from collections import Counter
from pathlib import Path

import yaml

from tpri.cli import Parser, stop_writing_stdout
from tpri.run.rundir import GONE, RECORD, SUMMARY, find_job_dirs, lock_holder, observed_status

COLUMNS = ("job", "status", "iteration", "best", "final", "lock")
FINISHED = ("completed", "diverged", "failed", "interrupted", GONE)


def read_job(job: Path) -> dict:
    """One job's row: status, iteration, max_iter, metric, best, final, lock (strings)."""
    summary = _read_json(job / SUMMARY)
    status = observed_status(job, summary.get("status")) if summary else None
    holder = lock_holder(job)
    if status is None:  # killed before its first evaluation, or starting now
        status = "no summary" if holder is None else ("starting" if holder.alive() is not False else GONE)
    max_iter = (_read_yaml(job / RECORD / "config.yaml") or {}).get("max_iter", "?")
    best = summary.get("best") or {}
    metric = best.get("metric") or "test_accuracy"
    alive = {True: "alive", False: "gone", None: "other host"}[holder.alive()] if holder else None
    return {
        "status": status,
        "iteration": f"{summary.get('iteration', 0)}/{max_iter}",
        "metric": metric,
        "best": _value(best.get(metric), best.get("iteration")),
        "final": _value((summary.get("final") or {}).get(metric)),
        "lock": f"{holder} ({alive})" if holder else "-",
    }


def _value(value, iteration=None) -> str:
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return "-"
    text = f"{value:.4g}" if math.isfinite(value) else str(value)
    return f"{text} @{iteration}" if iteration is not None else text


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _read_yaml(path: Path) -> dict | None:
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError):
        return None
    return data if isinstance(data, dict) else None


def table(root: Path) -> tuple[list[list[str]], Counter]:
    """The rows (header first) of the jobs below `root` and the count of each status."""
    jobs = find_job_dirs(root)
    rows, counts = [], Counter()
    metrics = set()
    for job in jobs:
        info = read_job(job)
        counts[info["status"]] += 1
        metrics.add(info["metric"])
        name = job.relative_to(root).as_posix() if job != root else "."
        rows.append([name, info["status"], info["iteration"], info["best"], info["final"], info["lock"]])
    metric = metrics.pop() if len(metrics) == 1 else "metric"
    header = ["job", "status", "iteration", f"best {metric}", "final", "lock"]
    return [header, *rows], counts


def render(rows: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in rows)


def counts_line(counts: Counter, always: tuple = ()) -> str:
    """`4 jobs: 3 completed, 1 diverged` (statuses in a fixed order; those of `always` even
    when none)."""
    order = ["running", "starting", *FINISHED, "no summary"]
    parts = [f"{counts[s]} {s}" for s in order if counts.get(s) or s in always]
    total = sum(counts.values())
    return f"{total} job{'s' if total != 1 else ''}: " + ", ".join(parts)


def main(argv: list[str] | None = None) -> int:
    parser = Parser(prog="tpri-status", description="The jobs below a dir of runs, as a table.")
    parser.add_argument("dirs", nargs="*", type=Path, default=[Path("outputs")], metavar="DIR")
    args = parser.parse_args(argv)
    try:
        return show(args.dirs)
    except BrokenPipeError:  # `tpri-status | head`
        return stop_writing_stdout()


def show(dirs: list[Path]) -> int:
    """Print the table of each dir; 2 when one is not a dir."""
    code = 0
    for root in dirs:
        if not root.is_dir():
            print(
                f"tpri-status: {root}: no such dir (expected a run, a sweep or an outputs dir)",
                file=sys.stderr,
            )
            code = 2
            continue
        rows, counts = table(root)
        if len(rows) == 1:
            print(f"{root}: no job dirs below it")
            continue
        print(f"{root}:")
        print(render(rows))
        print(counts_line(counts))
        if counts[GONE] or counts["interrupted"] or counts["failed"]:
            print("resume a stopped job: python train.py --resume DIR (installed: tpri-train --resume DIR)")
    return code


def program() -> str:
    """How the user started tpri: `python train.py` in a checkout, else `tpri-train`."""
    argv0 = Path(sys.argv[0]).name if sys.argv and sys.argv[0] else ""
    return f"python {sys.argv[0]}" if argv0 == "train.py" else "tpri-train"


if __name__ == "__main__":
    sys.exit(main())
