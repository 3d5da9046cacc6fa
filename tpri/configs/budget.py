"""What one job may use -- CPUs, memory, GPUs -- on the machine it will run on, for the resource
checks (`tpri.configs.rules.check_resources`).

- Inside a job (`here()`): the allocation first, then the machine. Memory: TPRI_MEMORY_LIMIT
  (bytes, e.g. 8e9) when set; else the SLURM allocation (SLURM_MEM_PER_NODE, or
  SLURM_MEM_PER_CPU x CPUs) or the cgroup's memory limit, whichever is smaller; else
  MemAvailable of /proc/meminfo; else the physical memory. CPUs: SLURM_CPUS_PER_TASK, else the
  CPUs this process may run on (its affinity). GPUs: what torch sees.
- Before a sweep, on the submitting machine (`for_launcher(launcher)`): what the launcher gives
  each job. SLURM / submitit: cpus_per_task, mem_gb (or additional_parameters.mem, sbatch's
  --mem, or mem_per_cpu), gpus_per_node, not the submitting host's; Ray: the task's num_cpus /
  memory / num_gpus; joblib: the machine shared by n_jobs jobs at once (each gets its share of
  the memory); the basic launcher: the machine.
  A value the launcher leaves to the cluster (null) is not checked before the sweep; the job
  checks it against its allocation when it starts.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple

MEMORY_LIMIT_ENV = "TPRI_MEMORY_LIMIT"
NO_LIMIT = 1 << 60  # cgroup v1 reports "no limit" as a huge number


class Budget(NamedTuple):
    """What one job gets; None: not known here (not checked)."""

    cpus: int | None
    memory: int | None  # bytes
    gpus: int | None  # None: this machine's CUDA devices, as torch sees them
    cpus_from: str = ""  # how a message names where the number comes from: "of this machine"
    memory_from: str = ""


# --- inside the job ----------------------------------------------------------------------


def here() -> Budget:
    """What this process may use: its allocation, else this machine."""
    memory, memory_from = memory_here()
    cpus, cpus_from = cpus_here()
    return Budget(cpus, memory, None, cpus_from, memory_from)


def memory_here() -> tuple[int, str]:
    """Bytes this process may use, and where the number comes from."""
    if os.environ.get(MEMORY_LIMIT_ENV):
        return int(float(os.environ[MEMORY_LIMIT_ENV])), f"of {MEMORY_LIMIT_ENV}"
    limits = [(b, w) for b, w in (slurm_memory(), (cgroup_memory(), "of this cgroup")) if b]
    if limits:
        return min(limits)
    return available_memory(), "available on this machine"


def available_memory() -> int:
    """MemAvailable of /proc/meminfo, else the physical memory."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def slurm_memory() -> tuple[int | None, str]:
    """The memory of this SLURM job's allocation (--mem, --mem-per-cpu), in bytes."""
    per_node = os.environ.get("SLURM_MEM_PER_NODE")
    if per_node and per_node.isdigit():
        return int(per_node) * 2**20, f"of the SLURM allocation (--mem={per_node}M)"
    per_cpu = os.environ.get("SLURM_MEM_PER_CPU")
    cpus = os.environ.get("SLURM_CPUS_PER_TASK") or os.environ.get("SLURM_CPUS_ON_NODE")
    if per_cpu and per_cpu.isdigit() and cpus and cpus.isdigit():
        return int(per_cpu) * int(cpus) * 2**20, f"of the SLURM allocation (--mem-per-cpu={per_cpu}M)"
    return None, ""


def cgroup_memory(proc: Path = Path("/proc/self/cgroup"), root: Path = Path("/sys/fs/cgroup")) -> int | None:
    """The smallest memory limit on this process's cgroup and its parents (v2 memory.max,
    v1 memory.limit_in_bytes); None when there is none."""
    try:
        lines = proc.read_text().splitlines()
    except OSError:
        return None
    limits = []
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if controllers == "":  # v2: one hierarchy
            base, name = root, "memory.max"
        elif "memory" in controllers.split(","):
            base, name = root / "memory", "memory.limit_in_bytes"
        else:
            continue
        folder = Path(path)
        for part in [folder, *folder.parents]:
            value = _read_limit(base / part.relative_to("/") / name)
            if value is not None:
                limits.append(value)
    return min(limits) if limits else None


def _read_limit(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    if not text.isdigit() or int(text) >= NO_LIMIT:
        return None  # "max": no limit
    return int(text)


def cpus_here() -> tuple[int, str]:
    given = os.environ.get("SLURM_CPUS_PER_TASK")
    if given and given.isdigit():
        return int(given), f"of the SLURM allocation (--cpus-per-task={given})"
    try:
        return len(os.sched_getaffinity(0)), "of this machine"
    except (AttributeError, OSError):
        return os.cpu_count() or 1, "of this machine"


# --- before a sweep: what the launcher gives each job -------------------------------------


def for_launcher(launcher: dict, jobs: int) -> Budget:
    """What each of `jobs` jobs gets from the launcher config `launcher` (hydra.launcher)."""
    target = str(launcher.get("_target_", ""))
    if "SlurmLauncher" in target or "LocalLauncher" in target:
        return _submitit(launcher, "SlurmLauncher" in target)
    if target.endswith("RayLauncher"):
        return _ray(launcher)
    if target.endswith("JoblibLauncher"):
        return _joblib(launcher, jobs)
    return here()


def _submitit(launcher: dict, slurm: bool) -> Budget:
    cpus, gpus = launcher.get("cpus_per_task"), launcher.get("gpus_per_node")
    memory, memory_from = None, ""
    if launcher.get("mem_gb") is not None:
        memory = int(launcher["mem_gb"] * 2**30)
        memory_from = f"a job gets (hydra.launcher.mem_gb={launcher['mem_gb']})"
    elif slurm and (launcher.get("additional_parameters") or {}).get("mem"):  # sbatch --mem
        given = launcher["additional_parameters"]["mem"]
        megabytes = _megabytes(str(given))
        memory = megabytes * 2**20 if megabytes else None
        memory_from = f"a job gets (hydra.launcher.additional_parameters.mem={given})"
    elif slurm and launcher.get("mem_per_cpu") and cpus:
        megabytes = _megabytes(str(launcher["mem_per_cpu"]))
        memory = megabytes * cpus * 2**20 if megabytes else None
        memory_from = f"a job gets (hydra.launcher.mem_per_cpu={launcher['mem_per_cpu']} x {cpus} CPUs)"
    cpus_from = f"a job gets (hydra.launcher.cpus_per_task={cpus})"
    budget = Budget(cpus, memory, gpus if slurm else None, cpus_from, memory_from)
    if slurm:
        return budget
    machine = here()  # local submitit processes run on this machine
    return Budget(
        cpus if cpus is not None else machine.cpus,
        memory if memory is not None and memory < machine.memory else machine.memory,
        None,
        cpus_from if cpus is not None else machine.cpus_from,
        memory_from if memory is not None and memory < machine.memory else machine.memory_from,
    )


def _megabytes(value: str) -> int | None:
    """SLURM's memory syntax (1024, 1024M, 4G, 1T) in MB."""
    units = {"K": 1 / 1024, "M": 1, "G": 1024, "T": 1024**2}
    value = value.strip().upper()
    scale = units.get(value[-1:])
    number = value[:-1] if scale else value
    try:
        return int(float(number) * (scale or 1))
    except ValueError:
        return None


def _ray(launcher: dict) -> Budget:
    options = launcher.get("remote") or {}
    local = not (launcher.get("init") or {}).get("address")
    machine = here() if local else Budget(None, None, None)  # a cluster's nodes: unknown here
    cpus, memory, gpus = options.get("num_cpus"), options.get("memory"), options.get("num_gpus")
    key = "hydra.launcher.remote"
    return Budget(
        int(cpus) if cpus else machine.cpus,
        int(memory) if memory else machine.memory,
        None if local or gpus is None else int(gpus),
        f"a job gets ({key}.num_cpus={cpus})" if cpus else machine.cpus_from,
        f"a job gets ({key}.memory={memory})" if memory else machine.memory_from,
    )


def _joblib(launcher: dict, jobs: int) -> Budget:
    machine = here()
    n_jobs = launcher.get("n_jobs") or 1
    if n_jobs < 0:  # joblib: -1 is all CPUs, -2 all but one, ...
        n_jobs = max(1, machine.cpus + 1 + n_jobs)
    parallel = max(1, min(n_jobs, jobs))
    if parallel == 1:
        return machine
    n = launcher.get("n_jobs")
    shared = f"shared by the {parallel} jobs running at once (hydra.launcher.n_jobs={n}; fewer: more each)"
    return machine._replace(memory=machine.memory // parallel, memory_from=f"{machine.memory_from}, {shared}")
