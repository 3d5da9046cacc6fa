"""TP's memory-saving paths: the same numbers as the plain computations and fewer live bytes
than BP; the benchmark's CSV and arguments."""

import csv

import pytest
import torch
import torch.nn.functional as F
from problems import assert_close, direction
from problems import rnn_problem as make_problem
from torch.profiler import ProfilerActivity, profile

import tpri
import tpri.algorithm.inverse
import tpri.algorithm.models
from tpri.algorithm.tp import TARGETS, UPDATES
from tpri.analysis import benchmark


@pytest.mark.parametrize("activation", ["tanh", "identity"])
def test_in_place_states_equal_nn_rnn_states(activation):
    model, x, _ = make_problem(T=9, activation=activation)
    with torch.enable_grad():
        reference = model.states(x).detach()  # nn.RNN / autograd unroll
    with torch.no_grad():
        in_place = model.states(x)
    assert in_place.shape == reference.shape
    torch.testing.assert_close(in_place, reference, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("model_kind", ["rnn", "gru"])
def test_bp_forward_reading_h_n_equals_readout_of_states(model_kind):
    model, x, _ = make_problem(T=5)
    if model_kind == "gru":
        model = tpri.GRU(x.shape[-1], 4, 3).double()
    torch.testing.assert_close(model(x), model.predict(model.states(x)), rtol=1e-13, atol=1e-14)


@pytest.mark.parametrize("activation", ["tanh", "identity"])
def test_closed_form_graph_update_equals_autograd(activation):
    model, x, _ = make_problem(T=7, activation=activation)
    E = 0.1 * torch.randn(5, 7, 4, dtype=torch.float64)
    model.zero_grad()
    model.states(x).backward(-E)  # dJ/dh_t = -e_t through the unrolled forward
    expected = {n: p.grad.clone() for n, p in model.rnn.named_parameters()}
    model.zero_grad()
    model.graph_backward(x, model.states(x).detach(), E)
    assert_close({n: p.grad for n, p in model.rnn.named_parameters()}, expected, rtol=1e-10, atol=1e-13)


@pytest.mark.parametrize("targets", TARGETS)
@pytest.mark.parametrize("update", UPDATES)
@pytest.mark.parametrize("activation", ["tanh", "identity"])
def test_one_step_chunks_give_the_same_direction(monkeypatch, targets, update, activation):
    """Chunks of one step exercise every chunk boundary of the sweep's slope pass and of the
    local / graph updates."""
    model, x, y = make_problem(T=6, activation=activation)
    method = tpri.TargetProp(0.3, 0.5, targets=targets, update=update)
    whole = direction(method, model, x, y)
    E_whole = method.displacements.clone()
    monkeypatch.setattr(tpri.algorithm.inverse, "CHUNK_ELEMENTS", 1)
    monkeypatch.setattr(tpri.algorithm.models, "CHUNK_ELEMENTS", 1)
    chunked = direction(method, model, x, y)
    assert_close(chunked, whole, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(method.displacements, E_whole, rtol=1e-12, atol=1e-14)


def test_text_model_per_step_targets_unchanged_by_one_step_chunks(monkeypatch):
    torch.manual_seed(0)
    model = tpri.TextRNN(11, 6, 11, embedding_dim=5).double()
    x, y = torch.randint(11, (4, 8)), torch.randint(11, (4, 8))

    def loss(pred, target):  # next-token cross-entropy, (B, T, V) against (B, T)
        return F.cross_entropy(pred.flatten(0, 1), target.flatten())

    for update in UPDATES:
        method = tpri.TargetProp(0.2, 1.0, update=update)
        whole = direction(method, model, x, y, loss)
        monkeypatch.setattr(tpri.algorithm.inverse, "CHUNK_ELEMENTS", 1)
        monkeypatch.setattr(tpri.algorithm.models, "CHUNK_ELEMENTS", 1)
        assert_close(direction(method, model, x, y, loss), whole, rtol=1e-12, atol=1e-14)
        monkeypatch.undo()


def peak_live_bytes(method: str, T: int, d: int, B: int) -> int:
    """Peak bytes of live CPU tensors during the first training iteration of a fresh runner,
    from the profiler's allocation events (exact, unaffected by the allocator)."""
    task, batches = benchmark.make_batches(T, B, 1, torch.device("cpu"))
    runner = benchmark.make_runner(method, task, d, torch.device("cpu"))
    x, y = batches[0]
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        runner.step(x, y, task.loss)
    events = sorted(
        (e.start_ns(), e.nbytes()) for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"
    )
    live = peak = 0
    for _, nbytes in events:
        live += nbytes
        peak = max(peak, live)
    return peak


def test_tp_holds_two_state_sized_buffers_where_bp_holds_three():
    """In units of one (T, B, d) float32 buffer at T=300, d=128, B=64, measured: BP and the
    plain nn.RNN loop 3.05 (their autograd graph and its gradients), TP(graph) and TP(local)
    2.23 (the states and E, plus chunked temporaries)."""
    T, d, B = 300, 128, 64
    unit = T * d * B * 4
    peak = {m: peak_live_bytes(m, T, d, B) / unit for m in benchmark.METHODS}
    assert 2.9 < peak["bp"] < 3.3 and 2.9 < peak["plain_rnn"] < 3.3, peak
    assert peak["tp_graph"] < 2.4 and peak["tp_local"] < 2.4, peak


@pytest.mark.slow
def test_tp_peak_rss_is_below_bp(monkeypatch):
    """The benchmark's own measurement: peak RSS above the pre-training baseline, one fresh
    process per method (T=300, d=128, B=64; a buffer is ~9.4 MiB). A fixed malloc mmap
    threshold makes RSS follow the live tensors rather than glibc's heap retention. Measured:
    BP ~34.6 MiB, TP(graph) and TP(local) ~27.5 MiB (with ~7 MiB of first-iteration setup)."""
    monkeypatch.setenv("MALLOC_MMAP_THRESHOLD_", "16384")
    peak = {
        m: benchmark.measure_memory(m, 300, 128, 64, 2, torch.device("cpu"), 1)
        for m in ("bp", "tp_graph", "tp_local")
    }
    assert peak["tp_local"] <= 0.9 * peak["bp"], peak
    assert peak["tp_graph"] <= 0.9 * peak["bp"], peak


def test_benchmark_writes_one_row_per_method_with_ratios(tmp_path, capsys):
    out = tmp_path / "bench.csv"
    code = benchmark.main(
        [
            "--T",
            "12",
            "--hidden",
            "8",
            "--batch",
            "4",
            "--iters",
            "2",
            "--warmup",
            "0",
            "--no-memory",
            "--out",
            str(out),
        ]
    )
    assert code == 0
    rows = list(csv.DictReader(open(out)))
    assert list(rows[0]) == list(benchmark.COLUMNS)
    assert [r["method"] for r in rows] == list(benchmark.METHODS)
    by = {r["method"]: r for r in rows}
    assert float(by["bp"]["ratio_to_bp"]) == 1.0
    for r in rows:
        assert (r["T"], r["hidden"], r["batch"]) == ("12", "8", "4")
        assert float(r["median_ms"]) > 0 and r["peak_mib"] == ""
    assert "BP/pl" in capsys.readouterr().out


@pytest.mark.parametrize(
    "args, key",
    [(["--T", "0"], "--T"), (["--threads", "100000"], "--threads"), (["--warmup", "-1"], "--warmup")],
)
def test_benchmark_rejects_bad_arguments(capsys, args, key):
    with pytest.raises(SystemExit) as exit_info:
        benchmark.main(args)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert key in err and len(err.strip().splitlines()) == 1


def test_benchmark_refuses_a_cell_that_cannot_fit_in_memory(tmp_path, capsys):
    out = tmp_path / "bench.csv"
    args = ["--T", "10", "--hidden", "8", "--batch", "1000000000", "--no-memory", "--out", str(out)]
    assert benchmark.main(args) == 2
    assert "T=10, hidden=8, batch=1000000000 needs about" in capsys.readouterr().err
    assert not out.exists()


def test_benchmark_rejects_an_output_it_cannot_write(tmp_path, capsys):
    assert benchmark.main(["--T", "12", "--hidden", "8", "--out", str(tmp_path)]) == 2
    assert "--out" in capsys.readouterr().err
