"""tpri's TP on the text model with optimizer.per_step='authors' against the authors' own code:
tests/data/oracle_ptb.json holds the parameters their training loop (RNNText, per-step loss,
linearized targets) reached after 1 and 5 iterations on a tiny problem (how it was produced:
its "produced_by" field and scripts/oracle_ptb.py). tpri's own rule (per_step='tpri') differs."""

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import tpri

ORACLE = json.loads((Path(__file__).parent / "data" / "oracle_ptb.json").read_text())


def tensors(named: dict) -> dict:
    return {k: torch.tensor(v, dtype=torch.float64) for k, v in named.items()}


def replay(per_step: str, iterations: int) -> dict:
    s, setting = ORACLE["sizes"], ORACLE["setting"]
    model = tpri.TextRNN(s["vocab"], s["hidden"], s["vocab"], embedding_dim=s["embedding"]).double()
    model.load_state_dict(tensors(ORACLE["init"]))
    tp = tpri.TargetProp(setting["lr_target"], setting["reg"], per_step=per_step)
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=setting["lr"])
    x, y = torch.tensor(ORACLE["x"]), torch.tensor(ORACLE["y"])

    def loss(pred, target):
        return F.cross_entropy(pred.flatten(0, 1), target.flatten())

    for it in range(iterations):
        opt.zero_grad()
        tp.backward(model, x[it], y[it], loss)
        opt.step()
    return {k: v.detach() for k, v in model.state_dict().items()}


@pytest.mark.parametrize("iterations", [1, 5])
def test_the_authors_per_step_rule_matches_their_text_model(iterations):
    expected, init = tensors(ORACLE["after"][str(iterations)]), tensors(ORACLE["init"])
    got = replay("authors", iterations)
    for key, value in expected.items():
        if key != "embedding.weight":  # frozen
            assert not torch.allclose(value, init[key]), key
        torch.testing.assert_close(got[key], value, rtol=1e-9, atol=1e-11, msg=lambda m, k=key: f"{k}: {m}")


def test_tpris_per_step_rule_is_another_direction():
    expected, got = tensors(ORACLE["after"]["1"]), replay("tpri", 1)
    torch.testing.assert_close(got["readout.weight"], expected["readout.weight"])  # the loss alone
    assert not torch.allclose(got["rnn.weight_hh_l0"], expected["rnn.weight_hh_l0"], rtol=1e-6, atol=1e-9)
