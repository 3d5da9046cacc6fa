"""Real-data tasks, loaded from tiny files written in the real formats (no network)."""

import gzip
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from datafiles import (
    IDX_NAMES,
    PTB_TRAIN,
    idx_bytes,
    write_cifar,
    write_idx_dataset,
    write_ptb,
)
from omegaconf import OmegaConf

from tpri.data import PTBTask, make_task
from tpri.data import images as images_module
from tpri.data.download import check_md5, extract_files, fetch, md5sum

CONF = Path(__file__).resolve().parents[1] / "conf" / "dataset"


def options(name: str, **overrides) -> dict:
    """The options of conf/dataset/<name>.yaml (without name), with overrides."""
    conf = OmegaConf.to_container(OmegaConf.load(CONF / f"{name}.yaml"), resolve=True)
    conf.pop("name")
    conf.pop("defaults")  # the schema it extends
    return {**conf, **overrides}


# --- configs --------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["digits", "mnist", "fashion_mnist", "cifar10", "ptb"])
def test_every_yaml_key_is_commented_and_accepted(name, tmp_path):
    lines = [
        line for line in (CONF / f"{name}.yaml").read_text().splitlines() if line and not line.startswith("#")
    ]
    assert all("#" in line for line in lines if not line.startswith("name:"))
    if name == "digits":
        make_task(name, **options(name))
        return
    writers = {
        "mnist": write_idx_dataset,
        "fashion_mnist": write_idx_dataset,
        "cifar10": write_cifar,
        "ptb": write_ptb,
    }
    writers[name](tmp_path)
    overrides = {"n_tokens": None} if name == "ptb" else {}
    make_task(name, **options(name, data_dir=str(tmp_path), **overrides))


# --- digits ---------------------------------------------------------------------------


def test_digits_shapes_and_range():
    task = make_task("digits", **options("digits"))
    assert task.x_train.shape == (1347, 64, 1) and task.x_test.shape == (450, 64, 1)
    assert (task.input_size, task.length, task.output_size) == (1, 64, 10)
    assert task.x_train.dtype == torch.float32 and task.y_train.dtype == torch.int64
    assert task.x_train.min() == 0 and task.x_train.max() == 1
    chunked = make_task("digits", **options("digits", size_chunk=4))
    assert (chunked.length, chunked.input_size) == (16, 4)
    assert torch.equal(chunked.x_train.flatten(1), task.x_train.flatten(1))


def test_digits_split_is_fixed_by_its_seed():
    a, b = make_task("digits", split_seed=3), make_task("digits", split_seed=3)
    c = make_task("digits", split_seed=4)
    assert torch.equal(a.x_test, b.x_test) and torch.equal(a.y_test, b.y_test)
    assert not torch.equal(a.x_test, c.x_test)


def test_digits_loss_and_accuracy():
    task = make_task("digits")
    _, y = task.test_set()
    perfect = F.one_hot(y, 10).float() * 20
    assert task.accuracy(perfect, y) == 1.0 and task.loss(perfect, y) < 1e-6
    assert 0.0 <= task.accuracy(torch.zeros(len(y), 10), y) <= 1.0
    xb, yb = task.sample(32, torch.Generator().manual_seed(0))
    xb2, _ = task.sample(32, torch.Generator().manual_seed(0))
    assert xb.shape == (32, 64, 1) and torch.equal(xb, xb2)
    assert torch.isfinite(task.loss(torch.randn(32, 10), yb))


def test_size_chunk_must_divide_the_sequence():
    with pytest.raises(ValueError, match=r"size_chunk=5 .*accepted values: \[1, 2, 4, 8"):
        make_task("digits", size_chunk=5)


# --- MNIST and Fashion-MNIST ----------------------------------------------------------


@pytest.mark.parametrize("gz", [True, False])
@pytest.mark.parametrize("name", ["mnist", "fashion_mnist"])
def test_idx_round_trip(tmp_path, name, gz):
    arrays = write_idx_dataset(tmp_path, gz=gz)
    task = make_task(name, **options(name, data_dir=str(tmp_path)))
    assert task.x_train.shape == (12, 784, 1) and task.x_test.shape == (5, 784, 1)
    assert task.x_train.dtype == torch.float32
    assert 0 <= task.x_train.min() and task.x_train.max() <= 1
    expected = torch.from_numpy(arrays["train-images-idx3-ubyte"]).reshape(12, 784, 1) / 255
    assert torch.allclose(task.x_train, expected)
    assert task.y_train.tolist() == arrays["train-labels-idx1-ubyte"].tolist()
    assert task.y_test.tolist() == arrays["t10k-labels-idx1-ubyte"].tolist()


@pytest.mark.parametrize("size_chunk", [1, 7, 28, 784])
def test_mnist_size_chunk(tmp_path, size_chunk):
    write_idx_dataset(tmp_path)
    task = make_task("mnist", **options("mnist", data_dir=str(tmp_path), size_chunk=size_chunk))
    assert (task.length, task.input_size) == (784 // size_chunk, size_chunk)
    assert task.x_test.shape == (5, 784 // size_chunk, size_chunk)


def test_mnist_size_chunk_error_lists_accepted_values(tmp_path):
    write_idx_dataset(tmp_path)
    with pytest.raises(ValueError, match=r"size_chunk=5 must divide the 784 .*\[1, 2, 4, 7"):
        make_task("mnist", **options("mnist", data_dir=str(tmp_path), size_chunk=5))


def test_mnist_permutation_is_fixed(tmp_path):
    write_idx_dataset(tmp_path)
    plain = make_task("mnist", **options("mnist", data_dir=str(tmp_path)))
    a = make_task("mnist", **options("mnist", data_dir=str(tmp_path), permute=True))
    b = make_task("mnist", **options("mnist", data_dir=str(tmp_path), permute=True))
    c = make_task("mnist", **options("mnist", data_dir=str(tmp_path), permute=True, permute_seed=1))
    assert torch.equal(a.x_train, b.x_train) and not torch.equal(a.x_train, c.x_train)
    perm = torch.randperm(784, generator=torch.Generator().manual_seed(0))
    assert torch.equal(a.x_train, plain.x_train[:, perm])
    assert torch.equal(a.x_test, plain.x_test[:, perm])  # the same permutation for test
    assert torch.equal(a.y_train, plain.y_train)


def test_mnist_n_train_and_normalize(tmp_path):
    write_idx_dataset(tmp_path)
    full = make_task("mnist", **options("mnist", data_dir=str(tmp_path)))
    sub = make_task("mnist", **options("mnist", data_dir=str(tmp_path), n_train=7))
    assert torch.equal(sub.x_train, full.x_train[:7]) and torch.equal(sub.y_train, full.y_train[:7])
    assert torch.equal(sub.x_test, full.x_test)
    with pytest.raises(ValueError, match="n_train=13"):
        make_task("mnist", **options("mnist", data_dir=str(tmp_path), n_train=13))
    norm = make_task("mnist", **options("mnist", data_dir=str(tmp_path), normalize=True))
    # the authors' constants, not this file's statistics: a zero pixel becomes -0.1307 / 0.3081
    assert torch.allclose(norm.x_train, (full.x_train - 0.1307) / 0.3081, atol=1e-6)
    assert torch.allclose(norm.x_test, (full.x_test - 0.1307) / 0.3081, atol=1e-6)


@pytest.mark.parametrize("name, mean, std", [("mnist", 0.1307, 0.3081), ("fashion_mnist", 0.2860, 0.3202)])
def test_idx_normalize_uses_the_datasets_constants_and_keeps_the_permutation(tmp_path, name, mean, std):
    arrays = write_idx_dataset(tmp_path)
    opts = options(name, data_dir=str(tmp_path), normalize=True, permute=True, size_chunk=4)
    task = make_task(name, **opts)
    raw = torch.from_numpy(arrays["train-images-idx3-ubyte"]).float().reshape(12, 784) / 255
    order = torch.randperm(784, generator=torch.Generator().manual_seed(0))
    expected = ((raw - mean) / std)[:, order].reshape(12, 196, 4)
    assert torch.allclose(task.x_train, expected, atol=1e-6)


def test_digits_normalize():
    raw = make_task("digits", **options("digits"))
    norm = make_task("digits", **options("digits", normalize=True))
    assert torch.allclose(norm.x_train, (raw.x_train - 0.3053) / 0.3761, atol=1e-6)
    assert abs(norm.x_train.mean()) < 0.05 and abs(norm.x_train.std() - 1) < 0.05


def test_mnist_missing_files(tmp_path):
    write_idx_dataset(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(FileNotFoundError) as error:
        make_task("mnist", **options("mnist", data_dir=str(tmp_path)))
    message = str(error.value)
    assert "t10k-labels-idx1-ubyte.gz" in message and str(tmp_path) in message
    assert "train-images" not in message and "dataset.download=true" in message


def test_data_dir_expands_user(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    write_idx_dataset(tmp_path / "mnist")
    task = make_task("mnist", **options("mnist", data_dir="~/mnist"))
    assert task.x_train.shape == (12, 784, 1)


@pytest.mark.parametrize(
    "damage, message",
    [  # IDX content -> file content
        (lambda raw: gzip.compress(raw[:-10]), "truncated or corrupt"),
        (lambda raw: gzip.compress(b"\x00\x00\x0b\x03" + raw[4:]), "bad magic number"),
        (lambda raw: gzip.compress(raw)[:-20], "unreadable gzip"),
    ],
)
def test_idx_corrupt_file(tmp_path, damage, message):
    write_idx_dataset(tmp_path)
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(damage(gzip.decompress(path.read_bytes())))
    with pytest.raises(ValueError, match=message) as error:
        make_task("mnist", **options("mnist", data_dir=str(tmp_path)))
    assert "train-images-idx3-ubyte.gz" in str(error.value)


def test_idx_mismatched_labels(tmp_path):
    write_idx_dataset(tmp_path, gz=False)
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(idx_bytes(np.zeros(4, np.uint8)))
    with pytest.raises(ValueError, match="t10k-labels-idx1-ubyte.*do not match the 5 images"):
        make_task("mnist", **options("mnist", data_dir=str(tmp_path)))


def test_mnist_download_from_a_local_mirror(tmp_path, monkeypatch):
    mirror = tmp_path / "mirror"
    arrays = write_idx_dataset(mirror)
    md5 = {f"{n}.gz": md5sum(mirror / f"{n}.gz") for n in IDX_NAMES}
    source = images_module.IdxSource((f"file://{tmp_path}/absent/", f"file://{mirror}/"), md5)
    monkeypatch.setitem(images_module.IDX_SOURCES, "mnist", source)
    data_dir = tmp_path / "data"
    task = make_task("mnist", **options("mnist", data_dir=str(data_dir), download=True))
    assert task.y_train.tolist() == arrays["train-labels-idx1-ubyte"].tolist()
    assert sorted(p.name for p in data_dir.iterdir()) == sorted(md5)


# --- CIFAR-10 ------------------------------------------------------------------------


def test_cifar_layouts(tmp_path):
    images, labels = write_cifar(tmp_path)
    rgb = make_task("cifar10", **options("cifar10", data_dir=str(tmp_path)))
    assert rgb.x_train.shape == (20, 1024, 3) and rgb.x_test.shape == (4, 1024, 3)
    assert rgb.y_train.tolist() == labels[:20].tolist()
    assert rgb.y_test.tolist() == labels[20:].tolist()
    planes = torch.from_numpy(images[:20]).float().reshape(20, 3, 1024) / 255
    assert torch.allclose(rgb.x_train, planes.transpose(1, 2))
    steps = make_task(
        "cifar10", **options("cifar10", data_dir=str(tmp_path), channels_as_steps=True, size_chunk=3)
    )
    assert (steps.length, steps.input_size) == (1024, 3)
    assert torch.allclose(steps.x_train.flatten(1), planes.flatten(1))
    grey = make_task("cifar10", **options("cifar10", data_dir=str(tmp_path), grayscale=True, size_chunk=4))
    assert (grey.length, grey.input_size) == (256, 4)
    luma = 0.299 * planes[:, 0] + 0.587 * planes[:, 1] + 0.114 * planes[:, 2]
    assert torch.allclose(grey.x_train.flatten(1), luma, atol=1e-6)
    assert 0 <= grey.x_train.min() and grey.x_train.max() <= 1
    with pytest.raises(ValueError, match="exclude"):
        make_task(
            "cifar10", **options("cifar10", data_dir=str(tmp_path), grayscale=True, channels_as_steps=True)
        )


def test_cifar_normalize_per_channel_in_every_layout(tmp_path):
    images, _ = write_cifar(tmp_path)
    planes = torch.from_numpy(images[:20]).float().reshape(20, 3, 1024) / 255
    mean, std = torch.tensor([0.4914, 0.4822, 0.4465]), torch.tensor([0.247, 0.243, 0.261])
    standard = (planes - mean[:, None]) / std[:, None]  # (20, 3, 1024)
    opts = options("cifar10", data_dir=str(tmp_path), normalize=True)
    steps = make_task("cifar10", **{**opts, "channels_as_steps": True})  # the paper's T = 3072
    assert steps.x_train.shape == (20, 3072, 1)
    assert torch.allclose(steps.x_train.flatten(1), standard.flatten(1), atol=1e-6)
    rgb = make_task("cifar10", **opts)
    assert torch.allclose(rgb.x_train, standard.transpose(1, 2), atol=1e-6)
    grey = make_task("cifar10", **{**opts, "grayscale": True})
    luma = 0.299 * standard[:, 0] + 0.587 * standard[:, 1] + 0.114 * standard[:, 2]
    assert torch.allclose(grey.x_train.flatten(1), luma, atol=1e-5)


def test_cifar_permute_and_n_train(tmp_path):
    write_cifar(tmp_path)
    plain = make_task("cifar10", **options("cifar10", data_dir=str(tmp_path)))
    perm = make_task("cifar10", **options("cifar10", data_dir=str(tmp_path), permute=True, n_train=6))
    order = torch.randperm(1024, generator=torch.Generator().manual_seed(0))
    assert torch.equal(perm.x_train, plain.x_train[:6, order])
    assert torch.equal(perm.y_train, plain.y_train[:6])


def test_cifar_missing_and_corrupt(tmp_path):
    write_cifar(tmp_path)
    batch = tmp_path / "cifar-10-batches-py" / "data_batch_3"
    batch.write_bytes(batch.read_bytes()[:100])
    with pytest.raises(ValueError, match="data_batch_3: not a readable CIFAR-10 batch"):
        make_task("cifar10", **options("cifar10", data_dir=str(tmp_path)))
    batch.unlink()
    with pytest.raises(FileNotFoundError, match="data_batch_3 in .*cifar-10-batches-py"):
        make_task("cifar10", **options("cifar10", data_dir=str(tmp_path)))


def test_cifar_extraction_from_the_archive(tmp_path, monkeypatch):
    source = tmp_path / "source"
    images, _ = write_cifar(source)
    archive = tmp_path / "data" / "cifar-10-python.tar.gz"
    archive.parent.mkdir()
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(source / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    monkeypatch.setattr(images_module, "CIFAR_URL", "file:///nowhere/cifar-10-python.tar.gz")
    monkeypatch.setattr(images_module, "CIFAR_MD5", "0" * 32)
    with pytest.raises(ValueError, match="cifar-10-python.tar.gz: md5 checksum"):
        make_task("cifar10", **options("cifar10", data_dir=str(archive.parent), download=True))
    monkeypatch.setattr(images_module, "CIFAR_MD5", md5sum(archive))
    task = make_task(
        "cifar10", **options("cifar10", data_dir=str(archive.parent), download=True, channels_as_steps=True)
    )
    assert torch.allclose(task.x_test.flatten(1), torch.from_numpy(images[20:]).float() / 255)


# --- Penn Treebank -------------------------------------------------------------------


def test_ptb_sequences(tmp_path):
    write_ptb(tmp_path)
    task = make_task("ptb", **options("ptb", data_dir=str(tmp_path), length=4, n_tokens=None))
    words = PTB_TRAIN.split("\n")
    n_tokens = sum(len(line.split()) + 1 for line in words[:-1])  # + <eos> per line
    assert task.x_train.shape == ((n_tokens - 1) // 4, 4) == task.y_train.shape
    assert task.x_train.dtype == torch.int64 and task.objective == "language_model"
    assert task.vocab[:2] == ["<eos>", "<unk>"] and len(set(task.vocab)) == len(task.vocab)
    assert task.input_size == task.output_size == len(task.vocab) == 10
    stream = torch.cat([task.x_train.flatten(), task.y_train[-1, -1:]])
    assert torch.equal(task.y_train.flatten(), stream[1:])  # targets: inputs shifted by one
    decoded = [task.vocab[i] for i in task.x_train[:2].flatten()]
    assert decoded == ["the", "cat", "sat", "on", "the", "mat", "<eos>", "the"]
    test_words = [task.vocab[i] for i in task.x_test[0]]
    assert test_words == ["the", "<unk>", "sat", "on"]  # "bird" is not in the training text


def test_ptb_token_caps_and_loss(tmp_path):
    write_ptb(tmp_path)
    task = make_task("ptb", **options("ptb", data_dir=str(tmp_path), length=3, n_tokens=10, n_test_tokens=7))
    assert task.x_train.shape == (3, 3) and task.x_test.shape == (2, 3)
    assert len(task.vocab) == 10  # the vocabulary still comes from the whole training file
    _, y = task.sample(5, torch.Generator().manual_seed(0))
    logits = torch.randn(5, 3, task.output_size)
    assert torch.isfinite(task.loss(logits, y)) and 0 <= task.accuracy(logits, y) <= 1
    assert task.train_eval_set()[0].shape == (3, 3)
    with pytest.raises(ValueError, match="fewer than the 101 one window needs"):
        make_task("ptb", **options("ptb", data_dir=str(tmp_path), length=100, n_tokens=None))


def test_ptb_overlapping_windows_are_the_authors(tmp_path):
    """Window i is tokens i..i+T-1 (target: i+1..i+T), N = n - T - 1 (from 40,000 tokens and
    T = 64: the authors' 39,935 sequences)."""
    write_ptb(tmp_path)
    opts = options("ptb", data_dir=str(tmp_path), length=4, n_tokens=20, n_test_tokens=9)
    plain = make_task("ptb", **{**opts, "length": 1})  # every token, one per sequence
    task = make_task("ptb", **{**opts, "windows": "overlapping"})
    assert task.x_train.shape == (20 - 4 - 1, 4) and task.x_test.shape == (9 - 4 - 1, 4)
    stream = torch.cat([plain.x_train.flatten(), plain.y_train[-1, -1:]])  # the first 20 tokens
    for i in range(len(task.x_train)):
        assert torch.equal(task.x_train[i], stream[i : i + 4]) and torch.equal(
            task.y_train[i], stream[i + 1 : i + 5]
        )
    assert PTBTask.shape({**opts, "windows": "overlapping", "length": 64, "n_tokens": 40000}).n_train == 39935


def test_ptb_missing_files(tmp_path):
    write_ptb(tmp_path)
    (tmp_path / "ptb.test.txt").unlink()
    with pytest.raises(FileNotFoundError, match=r"ptb.test.txt in .*dataset.download=true"):
        make_task("ptb", **options("ptb", data_dir=str(tmp_path)))


# --- downloads --------------------------------------------------------------------------


def test_check_md5(tmp_path):
    path = tmp_path / "file.bin"
    path.write_bytes(b"some bytes")
    check_md5(path, md5sum(path))
    with pytest.raises(ValueError, match="file.bin: md5 checksum"):
        check_md5(path, "0" * 32)


def test_fetch_verifies_and_leaves_no_partial_file(tmp_path):
    source = tmp_path / "source.bin"
    source.write_bytes(b"x" * 3_000_000)
    out = tmp_path / "out"
    with pytest.raises(OSError, match="md5 checksum") as error:
        fetch([f"file://{source}"], out / "file.bin", "0" * 32, dataset="x")
    assert f"file://{source}" in str(error.value)
    assert list(out.iterdir()) == []  # neither the file nor a temporary one
    mirrors = [f"file://{tmp_path}/absent.bin", f"file://{source}"]
    dest = fetch(mirrors, out / "file.bin", md5sum(source), dataset="x")
    assert dest.read_bytes() == source.read_bytes() and list(out.iterdir()) == [dest]


def test_extract_files_rejects_missing_members(tmp_path):
    (tmp_path / "a.txt").write_text("a")
    archive = tmp_path / "a.tar"
    with tarfile.open(archive, "w") as tar:
        tar.add(tmp_path / "a.txt", arcname="dir/a.txt")
    extract_files(archive, {"dir/a.txt": tmp_path / "out" / "a.txt"})
    assert (tmp_path / "out" / "a.txt").read_text() == "a"
    with pytest.raises(ValueError, match="no regular file 'dir/b.txt'"):
        extract_files(archive, {"dir/b.txt": tmp_path / "out" / "b.txt"})


def test_ptb_in_order_reads_consecutive_windows_epoch_after_epoch(tmp_path):
    write_ptb(tmp_path)
    opts = options("ptb", data_dir=str(tmp_path), length=4, n_tokens=20, windows="overlapping")
    task = make_task("ptb", **{**opts, "order": "in_order"})  # 15 windows: 3 batches of 4 an epoch
    gen = torch.Generator().manual_seed(0)
    batches = [task.sample(4, gen)[0] for _ in range(4)]
    for k in range(3):
        assert torch.equal(batches[k], task.x_train[4 * k : 4 * k + 4])
    assert torch.equal(batches[3], batches[0])  # the next epoch; windows 12..14 are dropped
    resumed = make_task("ptb", **{**opts, "order": "in_order"})
    resumed.load_state_dict(task.state_dict())
    assert torch.equal(resumed.sample(4, gen)[0], task.sample(4, gen)[0])  # batch 1 again
    assert make_task("ptb", **opts).state_dict() == {}  # random order: the generator only
    with pytest.raises(ValueError, match="in_order needs batch_size <= the 15"):
        task.sample(16, gen)


def test_a_jobs_checkpoint_carries_the_in_order_cursor(tmp_path):
    from helpers import compose_config

    from tpri.run.job import Job
    from tpri.run.rundir import Checkpoint

    write_ptb(tmp_path)
    cfg = compose_config(
        ["experiment=ptb", f"dataset.data_dir={tmp_path}", "dataset.n_tokens=40", "dataset.n_test_tokens=20",
         "dataset.length=4", "batch_size=8", "model.hidden=4", "model.embedding_dim=3"]
    )  # fmt: skip
    assert cfg["dataset"]["order"] == "in_order"
    job = Job(cfg)
    first = [job.task.sample(8, job.generator)[0] for _ in range(2)]
    resumed = Job(cfg)
    resumed.load(Checkpoint(**job.state(), iteration=2, metrics=[], gradients=[], train_time=0.0))
    assert torch.equal(resumed.task.sample(8, resumed.generator)[0], job.task.sample(8, job.generator)[0])
    assert not torch.equal(first[0], first[1])
