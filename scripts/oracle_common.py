"""What scripts/oracle_dtp.py and scripts/oracle_ptb.py share: reading the authors' checkout
given on the command line, the parameters of a net under tpri's names, and the one record file.
Nothing of the authors' code is copied; the checkout is only imported."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]


def open_checkout(description: str) -> str:
    """Parse `AUTHORS [--commit SHA]`, put the checkout on sys.path, switch torch to float64 with
    seed 0; return the checkout's commit ('' when unknown)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("authors", type=Path, help="a checkout of github.com/vroulet/tpri")
    parser.add_argument("--commit", default="", help="its commit, when it is not a git work tree")
    args = parser.parse_args()
    sys.path.insert(0, str(args.authors))
    torch.set_default_dtype(torch.float64)
    torch.manual_seed(0)
    git = ["git", "-C", str(args.authors), "rev-parse", "HEAD"]
    return args.commit or subprocess.run(git, capture_output=True, text=True).stdout.strip()


def params(net, names: dict[str, str]) -> dict:
    """The net's parameters that `names` maps (the authors' name -> tpri's), under tpri's names."""
    return {names[k]: v.detach().clone() for k, v in net.state_dict().items() if k in names}


def load(net, init: dict, names: dict[str, str]) -> None:
    """Load `init` (tpri's names) into the authors' net; its other parameters keep their values."""
    back = {v: k for k, v in names.items()}
    net.load_state_dict({back[k]: v for k, v in init.items()}, strict=False)


def train(run_optim, net, loss, data: dict, iterations: int, **options):
    """`iterations` of the authors' loop `run_optim` on the batches of `data` (no regulariser,
    no test set, silent); `options` name their oracle, diff_mode and steps."""
    batches = list(zip(data["x"], data["y"]))
    run_optim(loss, lambda net: 0.0, net, batches, None, 1000, max_iter=iterations, verbose=False, **options)
    return net


def as_lists(tensors: dict) -> dict:
    return {k: v.tolist() for k, v in tensors.items()}


def write(record: dict, out: Path) -> None:
    from tpri.io import save_text

    save_text(json.dumps(record, indent=1) + "\n", out)
    print(f"wrote {out}")
