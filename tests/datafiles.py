"""Writers of tiny dataset files in the real on-disk formats (IDX, CIFAR pickles, PTB text)."""

import gzip
import pickle
import struct
from pathlib import Path

import numpy as np

IDX_NAMES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)


def idx_bytes(array: np.ndarray) -> bytes:
    """An IDX file of unsigned bytes: magic 0x0000080D, big-endian dims, data."""
    header = struct.pack(">BBBB", 0, 0, 8, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(np.uint8).tobytes()


def write_idx_dataset(folder: Path, n_train=12, n_test=5, gz=True, seed=0) -> dict:
    """Random 28x28 images and labels as the four IDX files; returns the arrays."""
    rng = np.random.default_rng(seed)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28), np.uint8),
        "train-labels-idx1-ubyte": rng.integers(0, 10, n_train, np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28), np.uint8),
        "t10k-labels-idx1-ubyte": rng.integers(0, 10, n_test, np.uint8),
    }
    folder.mkdir(parents=True, exist_ok=True)
    for name, array in arrays.items():
        data = idx_bytes(array)
        if gz:
            (folder / f"{name}.gz").write_bytes(gzip.compress(data))
        else:
            (folder / name).write_bytes(data)
    return arrays


def write_cifar(folder: Path, n_per_batch=4, seed=0) -> tuple[np.ndarray, np.ndarray]:
    """Six pickled batches under folder/cifar-10-batches-py; returns all images and labels."""
    rng = np.random.default_rng(seed)
    batches = folder / "cifar-10-batches-py"
    batches.mkdir(parents=True, exist_ok=True)
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    images = rng.integers(0, 256, (6 * n_per_batch, 3072), np.uint8)
    labels = rng.integers(0, 10, 6 * n_per_batch)
    for i, name in enumerate(names):
        part = slice(i * n_per_batch, (i + 1) * n_per_batch)
        with open(batches / name, "wb") as f:
            pickle.dump(
                {b"data": images[part], b"labels": labels[part].tolist(), b"batch_label": name.encode()}, f
            )
    return images, labels


PTB_TRAIN = " the cat sat on the mat \n the dog sat \n a cat ran on the mat \n" * 5
PTB_TEST = " the bird sat on the mat \n" * 12


def write_ptb(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "ptb.train.txt").write_text(PTB_TRAIN)
    (folder / "ptb.test.txt").write_text(PTB_TEST)
