"""Hydra entry point: `python train.py ...` (repo root) or the `tpri-train` console script."""

from __future__ import annotations

from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from tpri.train import run

CONFIG_DIR = str(Path(__file__).resolve().parent.parent / "conf")


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="config")
def main(cfg: DictConfig) -> float:
    """Train one job into Hydra's output dir; returns the final train loss (for sweepers)."""
    summary = run(cfg, HydraConfig.get().runtime.output_dir)
    loss = summary.get("final", {}).get("train_loss")
    return float("inf") if loss is None or summary["status"] != "completed" else loss


if __name__ == "__main__":
    main()
