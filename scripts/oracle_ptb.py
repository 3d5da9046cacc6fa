"""Generate tests/data/oracle_ptb.json: reference iterates of the authors' TP on their text model.

    python scripts/oracle_ptb.py /path/to/a/checkout/of/github.com/vroulet/tpri [--commit SHA]

Runs the authors' own training loop (`src.optim.run_optimizer.run_optim`, oracle
'target_optim', diff_mode 'linearized', their per-step loss) on their `RNNText` (frozen
embedding) from the checkout given, on the CPU in float64, on a tiny language-modelling problem
whose token ids, next ids and initial parameters this script draws, and stores only numbers:
the problem, the initial parameters and the parameters after 1 and after 5 iterations. Their
code calls `torch.cholesky`, which torch 2.13 still has. Nothing of the authors' code is copied
or stored; the checkout is only imported. tests/test_oracle_ptb.py replays the problem with
tpri's TargetProp (optimizer.per_step='authors') and compares.
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F
from oracle_common import ROOT, as_lists, load, open_checkout, params, train, write

OUT = ROOT / "tests" / "data" / "oracle_ptb.json"
SIZES = dict(batch=4, length=6, vocab=7, embedding=3, hidden=5, batches=5)
SETTING = dict(lr=0.3, lr_target=0.5, reg=1.0)  # large enough to move every parameter in 5 steps
NAMES = {  # the authors' parameter names -> tpri's TextRNN
    "embedding.weight": "embedding.weight",
    "rnn.weight_ih_l0": "rnn.weight_ih_l0",
    "rnn.weight_hh_l0": "rnn.weight_hh_l0",
    "rnn.bias_ih_l0": "rnn.bias_ih_l0",
    "rnn.bias_hh_l0": "rnn.bias_hh_l0",
    "predict.lin.weight": "readout.weight",
    "predict.lin.bias": "readout.bias",
}


class CrossEntropySeq:
    """The per-step loss their loop recognises by this class name: cross-entropy over (B T)."""

    def __call__(self, pred, truth):
        return F.cross_entropy(pred.reshape(-1, pred.shape[-1]), truth.reshape(-1))


def problem(seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    s = SIZES
    ids = torch.randint(s["vocab"], (s["batches"], s["batch"], s["length"] + 1), generator=g)
    return {"x": ids[..., :-1], "y": ids[..., 1:]}


def run_authors(authors, data: dict, init: dict | None, iterations: int):
    s = SIZES
    net = authors.RNNText(s["embedding"], s["hidden"], vocab_size=s["vocab"], freeze_embedding=True)
    if init is not None:
        load(net, init, NAMES)
    options = dict(oracle="target_optim", diff_mode="linearized", **SETTING)
    return train(authors.run_optim, net, CrossEntropySeq(), data, iterations, **options)


def main() -> None:
    commit = open_checkout(__doc__.splitlines()[0])
    from src.model.rnn_text import RNNText
    from src.optim.run_optimizer import run_optim

    authors = argparse.Namespace(RNNText=RNNText, run_optim=run_optim)
    data = problem()
    init = params(run_authors(authors, data, None, 0), NAMES)
    record = {
        "produced_by": (
            "scripts/oracle_ptb.py: the authors' run_optim (oracle target_optim, diff_mode linearized, "
            f"RNNText, per-step loss) from github.com/vroulet/tpri at {commit or 'an unknown commit'}, "
            f"CPU, float64, torch {torch.__version__}"
        ),
        "sizes": SIZES,
        "setting": SETTING,
        "x": data["x"].tolist(),
        "y": data["y"].tolist(),
        "init": as_lists(init),
        "after": {str(n): as_lists(params(run_authors(authors, data, init, n), NAMES)) for n in (1, 5)},
    }
    write(record, OUT)


if __name__ == "__main__":
    main()
