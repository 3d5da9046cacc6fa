"""A Hydra launcher on Ray's public API (`ray.init`, `ray.remote`, `ray.get`): each job of a
sweep is one Ray task, composed and run in a Ray worker. `hydra/launcher=ray` starts a Ray
instance on this machine for the sweep; `hydra/launcher=ray_cluster` joins a running cluster
(`ray start --head` on one machine, `ray start --address=HEAD:6379` on the others).

Written for tpri instead of hydra-ray-launcher, which pins cloudpickle<3 (joblib needs >=3).
`init` is passed to `ray.init` as is (null values left out), `remote` to each task's
`.options()` (num_cpus, num_gpus, memory, max_retries, ...). Ray is imported when a sweep
launches, not when Hydra scans its plugins.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, filter_overrides, run_job, setup_globals
from hydra.plugins.launcher import Launcher
from omegaconf import DictConfig, OmegaConf, open_dict

log = logging.getLogger(__name__)

PASSED_ENV = ("TPRI_LAUNCHER", "TPRI_COMMAND", "TPRI_MEMORY_LIMIT", "TPRI_DATA")  # driver -> job


class RayLauncher(Launcher):
    def __init__(self, init: DictConfig | dict | None = None, remote: DictConfig | dict | None = None):
        self.init = _options(init)
        self.remote = _options(remote)
        self.config: DictConfig | None = None
        self.hydra_context = None
        self.task_function = None

    def setup(self, *, hydra_context, task_function, config: DictConfig) -> None:
        self.hydra_context, self.task_function, self.config = hydra_context, task_function, config

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        import ray

        setup_globals()
        sweep_dir = Path(str(self.config.hydra.sweep.dir)).absolute()
        sweep_dir.mkdir(parents=True, exist_ok=True)
        if not ray.is_initialized():
            ray.init(**self.init)
        log.info(f"Ray ({ray.get_runtime_context().gcs_address}) is launching {len(job_overrides)} jobs")
        log.info(f"Launching jobs, sweep output dir : {sweep_dir}")
        env = {k: os.environ[k] for k in PASSED_ENV if k in os.environ}
        task = ray.remote(run_one).options(**self.remote)
        pending = []
        for i, overrides in enumerate(job_overrides):
            num = initial_job_idx + i
            log.info(f"\t#{num} : {' '.join(filter_overrides(overrides))}")
            pending.append(
                task.remote(
                    num,
                    list(overrides),
                    self.hydra_context,
                    self.config,
                    self.task_function,
                    Singleton.get_state(),
                    os.getcwd(),
                    env,
                )
            )
        return ray.get(pending)


def _options(options) -> dict[str, Any]:
    if options is None:
        return {}
    if isinstance(options, DictConfig):
        options = OmegaConf.to_container(options, resolve=True)
    return {k: v for k, v in options.items() if v is not None}


def run_one(num, overrides, hydra_context, config, task_function, singletons, cwd, env) -> JobReturn:
    """One job in a Ray worker: the driver's working dir and environment, the job's config
    composed from the sweep's, then Hydra's run_job."""
    os.chdir(cwd)
    os.environ.update(env)
    setup_globals()
    Singleton.set_state(singletons)
    job_config = hydra_context.config_loader.load_sweep_config(config, overrides)
    with open_dict(job_config):
        job_config.hydra.job.id = f"{job_config.hydra.job.name}_{num}"
        job_config.hydra.job.num = num
    HydraConfig.instance().set_config(job_config)
    return run_job(
        hydra_context=hydra_context,
        task_function=task_function,
        config=job_config,
        job_dir_key="hydra.sweep.dir",
        job_subdir_key="hydra.sweep.subdir",
    )
