"""Jobs under a scheduler, without one (quick): what a job gets is what it is checked against
(the launcher's cpus_per_task / mem_gb / GPUs before a sweep, the SLURM allocation or cgroup
limit inside a job), a job a scheduler owns outlives its submitter, an interruption stays
`interrupted` after the handover to the handler installed before ours (submitit's requeue),
and the provenance names the scheduler's job. The same on real clusters: tests/test_cluster.py."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys

import pytest
from helpers import CONF, ROOT, TINY, compose_config
from test_rundir import _wait_for_iteration, summary

from tpri.configs.budget import Budget, cgroup_memory, for_launcher, memory_here
from tpri.configs.resources import estimate_memory, peak
from tpri.configs.rules import ConfigError, check_resources
from tpri.run import run
from tpri.run.preflight import preflight
from tpri.run.provenance import scheduler
from tpri.run.signals import LAUNCHER_ENV

SLURM_LAUNCHER = "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher"
SLURM_ENV = ("SLURM_JOB_ID", "SLURM_MEM_PER_NODE", "SLURM_MEM_PER_CPU", "SLURM_CPUS_PER_TASK")


@pytest.fixture(autouse=True)
def _no_allocation(monkeypatch):
    for var in (*SLURM_ENV, "TPRI_MEMORY_LIMIT"):
        monkeypatch.delenv(var, raising=False)


# --- before a sweep: what the launcher gives a job ------------------------------------------


def test_a_slurm_job_is_judged_by_its_launcher_not_the_submitting_host(monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1})  # a 2-CPU submitting host
    slurm = ["hydra/launcher=slurm", "seed=0,1", *TINY]
    assert preflight([*slurm, "threads=4", "hydra.launcher.cpus_per_task=4"], True, str(CONF)) == []
    errors = preflight([*slurm, "threads=4", "hydra.launcher.cpus_per_task=3"], True, str(CONF))
    assert errors[0] == (
        "job 0 (seed=0): threads=4 is more than the 3 CPUs a job gets (hydra.launcher.cpus_per_task=3); "
        "expected an integer in [0, 3] (0: torch's default)"
    )
    big = ["batch_size=20000", "dataset.length=500", "model.hidden=256"]
    errors = preflight([*slurm, *big, "hydra.launcher.mem_gb=1"], True, str(CONF))
    assert len(errors) == 2 and "a job gets (hydra.launcher.mem_gb=1); shrink batch_size" in errors[0]
    assert preflight([*slurm, *big, "hydra.launcher.mem_gb=500"], True, str(CONF)) == []
    errors = preflight([*slurm, "device=cuda"], True, str(CONF))
    assert "the launcher gives a job no GPU (hydra.launcher.gpus_per_node=0)" in errors[0]
    # a GPU the launcher gives is not looked for on the submitting host
    assert preflight([*slurm, "device=cuda", "hydra.launcher.gpus_per_node=1"], True, str(CONF)) == []


def test_parallel_local_jobs_share_the_machine(monkeypatch):
    monkeypatch.setenv("TPRI_MEMORY_LIMIT", "8e9")
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(8)))
    launcher = {"_target_": "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher"}
    assert for_launcher({**launcher, "n_jobs": 4}, jobs=10).memory == 2e9
    assert for_launcher({**launcher, "n_jobs": 4}, jobs=2).memory == 4e9  # only 2 run at once
    assert for_launcher({**launcher, "n_jobs": -1}, jobs=100).memory == 1e9  # one per CPU
    assert for_launcher({**launcher, "n_jobs": -2}, jobs=100).memory == 8e9 // 7
    cfg = compose_config([*TINY, "batch_size=2000", "dataset.length=300", "model.hidden=128"])
    monkeypatch.setenv("TPRI_MEMORY_LIMIT", str(4 * peak(estimate_memory(cfg))))  # 4 such jobs fit
    check_resources(cfg, budget=for_launcher({**launcher, "n_jobs": 1}, jobs=8))
    check_resources(cfg, budget=for_launcher({**launcher, "n_jobs": 4}, jobs=8))
    shared = r"shared by the 8 jobs running at once \(hydra.launcher.n_jobs=8; fewer: more each\)"
    with pytest.raises(ConfigError, match=shared):
        check_resources(cfg, budget=for_launcher({**launcher, "n_jobs": 8}, jobs=8))


def test_submitit_memory_per_cpu_and_unset_values():
    budget = for_launcher({"_target_": SLURM_LAUNCHER, "cpus_per_task": 4, "mem_per_cpu": "2G"}, 1)
    assert budget.memory == 4 * 2 * 2**30 and budget.cpus == 4 and budget.gpus is None
    mem = for_launcher({"_target_": SLURM_LAUNCHER, "additional_parameters": {"mem": "3G"}}, 1)
    assert mem.memory == 3 * 2**30 and "additional_parameters.mem=3G" in mem.memory_from
    unset = for_launcher({"_target_": SLURM_LAUNCHER, "cpus_per_task": None, "mem_gb": None}, 1)
    assert unset == Budget(None, None, None, unset.cpus_from, unset.memory_from)  # left to the job


# --- inside a job: its allocation -----------------------------------------------------------


def test_inside_a_slurm_job_the_allocation_counts(monkeypatch):
    monkeypatch.setenv("SLURM_MEM_PER_NODE", "1024")
    assert memory_here() == (2**30, "of the SLURM allocation (--mem=1024M)")
    monkeypatch.setenv("TPRI_MEMORY_LIMIT", "5e8")  # the explicit override wins
    assert memory_here() == (500_000_000, "of TPRI_MEMORY_LIMIT")
    monkeypatch.delenv("TPRI_MEMORY_LIMIT")
    monkeypatch.delenv("SLURM_MEM_PER_NODE")
    monkeypatch.setenv("SLURM_MEM_PER_CPU", "512")
    monkeypatch.setenv("SLURM_CPUS_PER_TASK", "3")
    assert memory_here()[0] == 3 * 512 * 2**20
    cfg = compose_config([*TINY, "threads=4"])
    with pytest.raises(ConfigError, match=r"threads=4 is more than the 3 CPUs of the SLURM allocation"):
        check_resources(cfg)
    monkeypatch.setenv("SLURM_MEM_PER_CPU", "1")
    with pytest.raises(ConfigError, match=r"than the 3\.1 MB of the SLURM allocation \(--mem-per-cpu=1M\)"):
        check_resources({**cfg, "threads": 1, "batch_size": 2000})


def test_cgroup_memory_limits_v1_and_v2(tmp_path):
    proc = tmp_path / "cgroup"
    proc.write_text("0::/slurm/job_7/step_0\n")
    root = tmp_path / "fs"
    for folder, value in (("slurm", "max"), ("slurm/job_7", "1073741824"), ("slurm/job_7/step_0", "max")):
        (root / folder).mkdir(parents=True)
        (root / folder / "memory.max").write_text(value + "\n")
    assert cgroup_memory(proc, root) == 2**30  # the job's limit, set on a parent of the step
    proc.write_text("4:memory:/docker/abc\n1:cpu:/docker/abc\n")
    (root / "memory" / "docker" / "abc").mkdir(parents=True)
    (root / "memory" / "docker" / "abc" / "memory.limit_in_bytes").write_text(str(2**62))
    assert cgroup_memory(proc, root) is None  # v1's "no limit"
    (root / "memory" / "docker" / "memory.limit_in_bytes").write_text("500000000")
    assert cgroup_memory(proc, root) == 500_000_000
    assert cgroup_memory(tmp_path / "absent", root) is None


# --- jobs a scheduler owns ------------------------------------------------------------------


def test_a_job_a_scheduler_owns_outlives_its_dead_submitter(tmp_path, monkeypatch):
    cfg = compose_config([*TINY, "max_iter=4", "eval_every=2"])
    dead = subprocess.Popen(["true"])
    dead.wait()
    monkeypatch.setenv(LAUNCHER_ENV, f"{dead.pid} {socket.gethostname()} -")
    monkeypatch.setenv("SLURM_JOB_ID", "77")
    assert run(cfg, tmp_path / "own")["status"] == "completed"
    # a worker inside the launcher's own allocation (joblib under salloc) still stops
    monkeypatch.setenv(LAUNCHER_ENV, f"{dead.pid} {socket.gethostname()} 77")
    with pytest.raises(Exception, match=f"launching process {dead.pid} died"):
        run(cfg, tmp_path / "shared")


def test_the_provenance_names_the_slurm_job(monkeypatch):
    assert scheduler() is None
    env = {
        "SLURM_JOB_ID": "12",
        "SLURM_ARRAY_JOB_ID": "11",
        "SLURM_ARRAY_TASK_ID": "1",
        "SLURMD_NODENAME": "node3",
        "SLURM_CPUS_PER_TASK": "2",
        "SLURM_MEM_PER_NODE": "4096",
        "SLURM_RESTART_COUNT": "2",
    }
    for var, value in env.items():
        monkeypatch.setenv(var, value)
    assert scheduler() == {
        "name": "slurm",
        "job_id": "12",
        "array_job_id": "11",
        "array_task_id": "1",
        "restart_count": "2",
        "node": "node3",
        "cpus_per_task": "2",
        "mem_per_node_mb": "4096",
    }


# --- the handover to submitit ---------------------------------------------------------------

# a handler installed before tpri's, as submitit's: on SIGUSR2 it requeues and exits (-1)
HANDED_OVER = """
import json, signal, sys
from tpri.run import run
signal.signal(signal.SIGUSR2, lambda signum, frame: sys.exit(-1))
run(json.loads(sys.argv[1]), sys.argv[2])
"""


def test_an_interruption_stays_interrupted_after_the_handover(tmp_path):
    out = tmp_path / "run"
    cfg = compose_config([*TINY, "max_iter=100000", "eval_every=50", "checkpoint_every=0"])
    proc = subprocess.Popen(
        [sys.executable, "-c", HANDED_OVER, json.dumps(cfg), str(out)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    _wait_for_iteration(out, 50, proc)
    proc.send_signal(signal.SIGUSR2)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 255 and "Traceback" not in stderr  # the previous handler's exit
    state = summary(out)
    assert state["status"] == "interrupted" and state["reason"] == "SIGUSR2", state
    assert state["provenance"]["ended"] is not None


# --- shared filesystems ---------------------------------------------------------------------


def test_a_filesystem_without_flock_refuses_the_dir_in_one_line(tmp_path, monkeypatch):
    import errno
    import fcntl

    from tpri.run import RunDirError

    def no_locks(fd, operation):
        raise OSError(errno.ENOLCK, os.strerror(errno.ENOLCK))

    monkeypatch.setattr(fcntl, "flock", no_locks)
    cfg = compose_config([*TINY, "max_iter=4", "eval_every=2"])
    with pytest.raises(RunDirError) as refused:
        run(cfg, tmp_path / "run")
    message = str(refused.value)
    assert message == (
        f"{tmp_path}/run/run.lock: cannot lock it (No locks available): tpri needs flock on the output "
        "dir's filesystem (Lustre: mount with -o flock; NFS: a lock manager); choose an output dir on "
        "a filesystem that has it"
    )
    assert not (tmp_path / "run" / "summary.json").exists()


def test_a_time_limit_warning_outside_training_ends_nothing(tmp_path):
    """SLURM's SIGUSR2 can come while Python starts or after the job has finished: ignored
    there (the job then completes, exit 0); while it trains it checkpoints (test_rundir)."""
    code = (
        "import os, signal, sys\n"
        "from tpri.run.signals import ignore_stray_warnings\n"
        "ignore_stray_warnings()\n"
        "os.kill(os.getpid(), signal.SIGUSR2)\n"
        "from tpri.run import run\n"
        "run(dict(json_cfg), sys.argv[1])\n"
        "os.kill(os.getpid(), signal.SIGUSR2)\n"
    )
    cfg = compose_config([*TINY, "max_iter=4", "eval_every=2"])
    script = code.replace("json_cfg", repr(cfg))
    proc = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "run")], cwd=ROOT, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    assert summary(tmp_path / "run")["status"] == "completed"
