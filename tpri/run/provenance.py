"""Where a result comes from: code version (git commit when run from a checkout), library
versions, machine, command line and overrides, and for a job a scheduler runs, the scheduler's
ids and the allocation; recorded in `summary.json`."""

from __future__ import annotations

import json
import os
import platform
import socket
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

import torch

PACKAGE_ROOT = Path(__file__).resolve().parents[2]  # the checkout, when tpri runs from one
COMMAND_ENV = "TPRI_COMMAND"  # the command that launched the jobs (JSON list), seen by every job
# what a SLURM job records: key in `scheduler` -> environment variable
SLURM_FIELDS = {
    "job_id": "SLURM_JOB_ID",
    "array_job_id": "SLURM_ARRAY_JOB_ID",
    "array_task_id": "SLURM_ARRAY_TASK_ID",
    "restart_count": "SLURM_RESTART_COUNT",
    "partition": "SLURM_JOB_PARTITION",
    "node": "SLURMD_NODENAME",
    "nodes": "SLURM_JOB_NODELIST",
    "cpus_per_task": "SLURM_CPUS_PER_TASK",
    "cpus_on_node": "SLURM_CPUS_ON_NODE",
    "mem_per_node_mb": "SLURM_MEM_PER_NODE",
    "mem_per_cpu_mb": "SLURM_MEM_PER_CPU",
    "gpus": "SLURM_JOB_GPUS",
    "time_limit_end": "SLURM_JOB_END_TIME",
}


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def git_state(root: Path = PACKAGE_ROOT) -> dict | None:
    """{"commit", "dirty"} of the checkout tpri runs from; None outside a git checkout."""
    if not (root / ".git").exists():
        return None
    try:
        commit = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
        status = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return {"commit": commit, "dirty": bool(status.strip())}


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return platform.processor() or platform.machine() or "cpu"


def mark_command(argv: list[str]) -> None:
    """Called by the process that launches jobs: they record `argv` as their command (a job
    run by submitit or Ray would see its worker's command line)."""
    os.environ[COMMAND_ENV] = json.dumps([Path(argv[0]).name, *argv[1:]])


def command() -> list[str]:
    try:
        return json.loads(os.environ[COMMAND_ENV])
    except (KeyError, ValueError):
        return [Path(sys.argv[0]).name, *sys.argv[1:]]


def scheduler() -> dict | None:
    """The SLURM job this process runs in: its ids, node and allocation (None outside SLURM)."""
    if "SLURM_JOB_ID" not in os.environ:
        return None
    found = {key: os.environ.get(var) for key, var in SLURM_FIELDS.items()}
    return {"name": "slurm", **{k: v for k, v in found.items() if v is not None}}


def cpu_model() -> str | None:
    """The CPU's model name from /proc/cpuinfo (Linux), None elsewhere."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def machine() -> dict:
    """What the timings of a run depend on besides the run: CPU model, cores, load at start."""
    try:
        load = round(os.getloadavg()[0], 2)
    except OSError:
        load = None
    return {"cpu": cpu_model() or platform.machine() or "cpu", "cores": os.cpu_count(), "load_1min": load}


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


def provenance(device: torch.device, overrides: list[str] | None, started: str) -> dict:
    return {
        "git": git_state(),
        "versions": {
            "python": platform.python_version(),
            "tpri": _version("tpri"),  # pyproject's version, the one version string
            "torch": str(torch.__version__),
            "numpy": _version("numpy"),
            "hydra": _version("hydra-core"),
            "omegaconf": _version("omegaconf"),
        },
        "device": {"type": device.type, "name": device_name(device), "threads": torch.get_num_threads()},
        "hostname": socket.gethostname(),
        "machine": machine(),
        "command": command(),
        "scheduler": scheduler(),
        "overrides": list(overrides or []),
        "started": started,
        "ended": None,
    }


def stretch(prov: dict, first: int, last: int, ended: str | None) -> dict:
    """One process's share of a job: iterations first..last, on this code and machine."""
    return {
        "from_iteration": first,
        "to_iteration": last,
        "started": prov.get("started"),
        "ended": ended,
        "git": prov.get("git"),
        "tpri": prov.get("versions", {}).get("tpri"),
        "hostname": prov.get("hostname"),
        "device": prov.get("device", {}).get("name"),
    }


def whole_git(stretches: list[dict]) -> dict | None:
    """The code state of a result trained in `stretches`: their commit when they share one,
    else the list of commits in order; dirty when any stretch ran modified code (None when a
    stretch's state is unknown, e.g. outside a checkout or from a checkpoint of tpri 0.1.0)."""
    states = [s.get("git") for s in stretches]
    if not states:
        return None
    if any(state is None for state in states):
        known = [s for s in states if s is not None]
        commits = list(dict.fromkeys(s["commit"] for s in known))
        return {"commit": commits[0] if len(commits) == 1 else commits, "dirty": None} if known else None
    commits = list(dict.fromkeys(s["commit"] for s in states))
    return {"commit": commits[0] if len(commits) == 1 else commits, "dirty": any(s["dirty"] for s in states)}
