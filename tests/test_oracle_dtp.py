"""tpri's DTP-PI (variant authors) against the authors' own code: tests/data/oracle_dtp.json
holds the parameters their training loop reached after 1 and 5 iterations on a tiny problem
(how it was produced: its "produced_by" field and scripts/oracle_dtp.py)."""

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import tpri
from tpri.algorithm.dtp import DTP

ORACLE = json.loads((Path(__file__).parent / "data" / "oracle_dtp.json").read_text())


def tensors(named: dict) -> dict:
    return {k: torch.tensor(v, dtype=torch.float64) for k, v in named.items()}


def replay(setting: dict, iterations: int) -> dict:
    """tpri's model and DTP from the oracle's initial parameters, `iterations` steps of SGD on
    the oracle's batches; the parameters under the oracle's names."""
    sizes, init = ORACLE["sizes"], tensors(ORACLE["init"])
    model = tpri.RNN(sizes["inputs"], sizes["hidden"], sizes["classes"]).double()
    model.load_state_dict({k: v for k, v in init.items() if not k.startswith("reverse.")})
    momentum = setting["momentum"]
    dtp = DTP(
        setting["lr_target"],
        setting["lr_reverse"],
        0.0,
        variant="authors",
        momentum=momentum,
        nesterov=momentum > 0,
    )
    dtp.load_state_dict(  # the oracle's initial reverse layer, no optimizer state yet
        {
            "variant": "authors",
            "reverse": {k.removeprefix("reverse."): v for k, v in init.items() if k.startswith("reverse.")},
            "optimizer": None,
            "generator": torch.Generator().get_state(),
            "generator_device": "cpu",
        }
    )
    opt = torch.optim.SGD(model.parameters(), lr=setting["lr"], momentum=momentum, nesterov=momentum > 0)
    x, y = torch.tensor(ORACLE["x"], dtype=torch.float64), torch.tensor(ORACLE["y"])
    for it in range(iterations):
        opt.zero_grad()
        dtp.backward(model, x[it], y[it], F.cross_entropy)
        opt.step()
    reverse = {f"reverse.{k}": v for k, v in dtp.reverse.state_dict().items()}
    return {**{k: v.detach() for k, v in model.state_dict().items()}, **reverse}


@pytest.mark.parametrize("name", sorted(ORACLE["settings"]))
@pytest.mark.parametrize("iterations", [1, 5])
def test_dtp_matches_the_authors_iterates(name, iterations):
    setting = ORACLE["settings"][name]
    expected = tensors(setting["after"][str(iterations)])
    got = replay(setting, iterations)
    init = tensors(ORACLE["init"])
    for key, value in expected.items():
        assert not torch.allclose(value, init[key]), key  # every parameter moved
        torch.testing.assert_close(got[key], value, rtol=1e-9, atol=1e-11, msg=lambda m, k=key: f"{k}: {m}")
