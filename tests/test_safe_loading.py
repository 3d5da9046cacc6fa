"""Every read of a checkpoint or weights file loads tensors and plain data only: a pickle that
would run code is refused without running it, and every failure names the file."""

import pathlib
import pickle

import pytest
import torch
from helpers import TINY, compose_config

from tpri import io
from tpri.run import load_model, run
from tpri.run.rundir import RunDir


class Trap:
    """Unpickling this creates `marker`: the proof that a load executed code."""

    def __init__(self, marker: pathlib.Path):
        self.marker = marker

    def __reduce__(self):
        return (pathlib.Path.touch, (self.marker,))


@pytest.fixture
def cfg():
    return compose_config([*TINY, "max_iter=40", "eval_every=20"])


def _plant(path: pathlib.Path, marker: pathlib.Path, fmt: str) -> None:
    payload = {"model": {}, "model_options": {}, "trap": Trap(marker)}
    if fmt == "torch":
        torch.save(payload, path)
    else:
        path.write_bytes(pickle.dumps(payload))


@pytest.mark.parametrize("fmt", ["torch", "pickle"])
@pytest.mark.parametrize("which, name", [("best", "best.pt"), ("last", "checkpoint.pt")])
def test_load_model_never_runs_a_pickle_and_names_the_file(cfg, tmp_path, fmt, which, name):
    run(cfg, tmp_path / "run")
    marker = tmp_path / "marker"
    _plant(tmp_path / "run" / name, marker, fmt)
    with pytest.raises(io.UnreadableFile, match=rf"{tmp_path / 'run' / name}: .*not loaded"):
        load_model(tmp_path / "run", which=which)
    assert not marker.exists()


@pytest.mark.parametrize("fmt", ["torch", "pickle"])
def test_a_rerun_never_runs_a_pickle_placed_as_checkpoint_or_best(cfg, tmp_path, fmt):
    out = tmp_path / "run"
    run({**cfg, "max_iter": 20}, out)
    marker = tmp_path / "marker"
    _plant(out / "checkpoint.pt", marker, fmt)
    _plant(out / "best.pt", marker, fmt)
    prev = RunDir(out).read_previous()  # what the preflight and recovery read
    assert prev.checkpoint is None and prev.damaged_checkpoint
    assert any(str(out / "checkpoint.pt") in note for note in prev.notes)
    run({**cfg, "max_iter": 20}, out)  # completed at 20 per its summary: skipped, best.pt rewritten
    assert not marker.exists()


@pytest.mark.parametrize(
    "content, problem",
    [(b"", "damaged or not a torch file"), (b"garbage", "not"), (None, "is a directory")],
)
def test_a_damaged_weights_file_names_the_file(cfg, tmp_path, content, problem):
    run(cfg, tmp_path)
    best = tmp_path / "best.pt"
    best.unlink()
    if content is None:
        best.mkdir()
    else:
        best.write_bytes(content)
    with pytest.raises(io.UnreadableFile, match=rf"{best}: .*{problem}"):
        load_model(tmp_path)


def test_a_foreign_torch_file_names_the_file_and_what_it_lacks(cfg, tmp_path):
    run(cfg, tmp_path)
    torch.save({"weights": torch.zeros(3)}, tmp_path / "best.pt")
    with pytest.raises(io.UnreadableFile, match="not a tpri weights file"):
        load_model(tmp_path)
    torch.save({"model": {}, "model_options": {"name": "lstm"}}, tmp_path / "best.pt")
    with pytest.raises(io.UnreadableFile, match="do not build a tpri model"):
        load_model(tmp_path)


@pytest.mark.parametrize("optimizer", ["tp", "sgd", "adam", "dtp"])
def test_every_file_a_run_writes_loads_with_weights_only(tmp_path, optimizer):
    cfg = compose_config([*TINY, f"optimizer={optimizer}", "max_iter=20", "eval_every=10"])
    run(cfg, tmp_path)
    for name in ("checkpoint.pt", "best.pt"):
        state = torch.load(tmp_path / name, weights_only=True)
        assert state["model"].keys() == load_model(tmp_path).state_dict().keys()
    assert isinstance(torch.load(tmp_path / "checkpoint.pt", weights_only=True)["config"], dict)


def test_plain_data_only_is_saved(tmp_path):
    import numpy as np

    io.save_torch({"a": np.float64(0.5), "b": np.int64(3), "v": torch.__version__}, tmp_path / "x.pt")
    state = torch.load(tmp_path / "x.pt", weights_only=True)
    assert state == {"a": 0.5, "b": 3, "v": str(torch.__version__)}
    assert [type(v) for v in state.values()] == [float, int, str]
    with pytest.raises(TypeError, match=r"\.bad: a Trap cannot be saved"):
        io.save_torch({"bad": Trap(tmp_path / "m")}, tmp_path / "y.pt")
    assert not (tmp_path / "y.pt").exists()


def test_a_checkpoint_of_the_previous_version_still_loads(cfg, tmp_path):
    """tpri 0.1.0 wrote torch's version as a TorchVersion object; such a file still loads."""
    run(cfg, tmp_path)
    state = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    state["summary"]["provenance"]["versions"]["torch"] = torch.__version__  # as 0.1.0 wrote it
    torch.save(state, tmp_path / "checkpoint.pt")
    loaded = io.load_torch(tmp_path / "checkpoint.pt")
    assert loaded["iteration"] == 40 and loaded["summary"]["status"] == "completed"
    assert load_model(tmp_path, which="last").state_dict().keys() == state["model"].keys()


def test_a_cifar_batch_is_read_as_numpy_data_only(tmp_path):
    import numpy as np

    from tpri.data.download import DataFileError
    from tpri.data.images import read_cifar_batch

    good = tmp_path / "good"
    good.write_bytes(pickle.dumps({b"data": np.zeros((2, 3072), np.uint8), b"labels": [1, 2]}))
    images, labels = read_cifar_batch(good)
    assert images.shape == (2, 3072) and labels.tolist() == [1, 2]
    marker = tmp_path / "marker"
    planted = tmp_path / "data_batch_1"
    planted.write_bytes(pickle.dumps({b"data": Trap(marker), b"labels": [1]}))
    with pytest.raises(DataFileError, match=rf"{planted}: not a readable CIFAR-10 batch .*refused to load"):
        read_cifar_batch(planted)
    assert not marker.exists()
