"""Generate tests/data/oracle_dtp.json: reference iterates of the authors' DTP-PI.

    python scripts/oracle_dtp.py /path/to/a/checkout/of/github.com/vroulet/tpri [--commit SHA]

Runs the authors' own training loop (`src.optim.run_optimizer.run_optim`, oracle
'target_auto_enc', diff_mode 'diff': their DTP-PI) from the checkout given, on the CPU in
float64, on a tiny sequence classification problem whose inputs, labels and initial parameters
this script draws, and stores only numbers: the problem, the initial parameters and the
parameters after 1 and after 5 iterations, for two settings (the authors' synthetic-task
optimiser: Nesterov 0.9 on both parameter groups; and plain SGD), with noise 0 so the run is
deterministic. Nothing of the authors' code is copied here or stored; the checkout is only
imported. tests/test_oracle_dtp.py replays the problem with tpri's DTP (variant authors) and
compares.
"""

from __future__ import annotations

import argparse

import torch
from oracle_common import ROOT, as_lists, load, open_checkout, params, train, write

OUT = ROOT / "tests" / "data" / "oracle_dtp.json"
SIZES = dict(batch=4, length=6, inputs=3, hidden=5, classes=4, batches=5)
SETTINGS = {  # larger steps than the paper's so that 5 iterations move every parameter visibly
    "nesterov": dict(lr=0.1, lr_target=0.5, lr_reverse=0.2, momentum=0.9),
    "plain": dict(lr=0.05, lr_target=0.3, lr_reverse=0.1, momentum=0.0),
}
NAMES = {  # the authors' parameter names -> tpri's (model, or the DTP reverse layer)
    "rnn.weight_ih_l0": "rnn.weight_ih_l0",
    "rnn.weight_hh_l0": "rnn.weight_hh_l0",
    "rnn.bias_ih_l0": "rnn.bias_ih_l0",
    "rnn.bias_hh_l0": "rnn.bias_hh_l0",
    "predict.lin.weight": "readout.weight",
    "predict.lin.bias": "readout.bias",
    "reverse_Vhh": "reverse.hidden.weight",
    "reverse_ch": "reverse.hidden.bias",
}


def problem(seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    s = SIZES
    x = 0.8 * torch.randn(s["batches"], s["batch"], s["length"], s["inputs"], generator=g)
    y = torch.randint(s["classes"], (s["batches"], s["batch"]), generator=g)
    return {"x": x, "y": y}


def run_authors(authors, data: dict, init: dict | None, setting: dict, iterations: int):
    """The authors' net after `iterations` of their loop (from `init` when given)."""
    net = authors.RNN(SIZES["inputs"], SIZES["hidden"], SIZES["classes"])
    if init is not None:
        load(net, init, NAMES)
    loss = torch.nn.CrossEntropyLoss()
    return train(
        authors.run_optim,
        net,
        loss,
        data,
        iterations,
        oracle="target_auto_enc",
        diff_mode="diff",
        noise=0.0,
        **setting,
    )


def main() -> None:
    commit = open_checkout(__doc__.splitlines()[0])
    from src.model.rnn import RNN
    from src.optim.run_optimizer import run_optim

    authors = argparse.Namespace(RNN=RNN, run_optim=run_optim)
    data = problem()
    init = params(run_authors(authors, data, None, SETTINGS["plain"], 0), NAMES)
    record = {
        "produced_by": (
            "scripts/oracle_dtp.py: the authors' run_optim (oracle target_auto_enc, diff_mode diff) "
            f"from github.com/vroulet/tpri at {commit or 'an unknown commit'}, CPU, float64, noise 0, "
            f"torch {torch.__version__}"
        ),
        "sizes": SIZES,
        "x": data["x"].tolist(),
        "y": data["y"].tolist(),
        "init": as_lists(init),
        "settings": {},
    }
    for name, setting in SETTINGS.items():
        after = {n: params(run_authors(authors, data, init, setting, n), NAMES) for n in (1, 5)}
        record["settings"][name] = {**setting, "after": {str(n): as_lists(p) for n, p in after.items()}}
    write(record, OUT)


if __name__ == "__main__":
    main()
