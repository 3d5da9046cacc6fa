"""Image classification read pixel by pixel: scikit-learn's 8x8 digits (bundled, offline),
MNIST and Fashion-MNIST (IDX files), CIFAR-10 (python pickle batches).

An image of P pixel positions with C values each becomes a sequence of T = P / size_chunk
steps of size_chunk * C values, in raster order (optionally reordered by a fixed seeded
permutation, as in permuted MNIST). Pixels are float32 in [0, 1] unless `normalize`
standardises each channel with the dataset's mean and std of STANDARDIZATION (the authors'
constants: what their loader applies by default). Raw files are decoded once per process and
kept in memory; tasks are built with whole-tensor operations.
"""

from __future__ import annotations

import functools
import gzip
import math
import struct
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple, Optional

import numpy as np
import torch
from omegaconf import MISSING
from torch import Tensor

from tpri.data.base import FLOAT, Shape, TensorTask, data_folder
from tpri.data.download import DataFileError, check_md5, extract_files, fetch, missing_files_error
from tpri.io import load_pickle
from tpri.spec import ConfigError, seed, size, spec

N_CLASSES = 10

# Per-channel (mean, std) of each dataset's training pixels in [0, 1], the constants the
# authors' loader standardises with when normalize=True (its default; their MNIST convergence,
# heatmap and sensitivity runs pass normalize=False): MNIST, Fashion-MNIST, CIFAR-10 (R, G, B);
# digits (not the authors'): the mean and std of all 1797 images scaled to [0, 1].
STANDARDIZATION = {
    "digits": ((0.3053,), (0.3761,)),
    "mnist": ((0.1307,), (0.3081,)),
    "fashion_mnist": ((0.2860,), (0.3202,)),
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.247, 0.243, 0.261)),
}

# --- sequences from images ----------------------------------------------------------------


def fixed_permutation(n: int, seed: int) -> Tensor:
    """The permutation of range(n) drawn from torch.Generator seeded with `seed` (n,)."""
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed))


def check_chunk(steps: int, size_chunk: int) -> None:
    """ConfigError unless `size_chunk` divides the `steps` of a sequence."""
    if size_chunk < 1 or steps % size_chunk:
        divisors = [d for d in range(1, steps + 1) if steps % d == 0]
        raise ConfigError(
            f"dataset.size_chunk={size_chunk} must divide the {steps} steps of a "
            f"sequence; accepted values: {divisors}"
        )


def to_sequences(pixels: Tensor, size_chunk: int, perm: Tensor | None = None) -> Tensor:
    """Pixels (N, P, C), reordered along P by `perm`, to sequences (N, P / size_chunk,
    size_chunk * C): each step holds size_chunk consecutive pixels, all their values."""
    n, p, c = pixels.shape
    check_chunk(p, size_chunk)
    if perm is not None:
        pixels = pixels[:, perm]
    return pixels.reshape(n, p // size_chunk, size_chunk * c)


def standardize(name: str, pixels: Tensor) -> Tensor:
    """Pixels (N, P, C) in [0, 1] standardised channel by channel with the (mean, std) of
    dataset `name` in STANDARDIZATION: (x - mean_c) / std_c."""
    mean, std = (torch.tensor(v, dtype=pixels.dtype) for v in STANDARDIZATION[name])
    if pixels.shape[-1] != len(mean):
        raise ValueError(f"{name}: {pixels.shape[-1]} channels, standardization has {len(mean)}")
    return (pixels - mean) / std


def take_first(n_train: int | None, images: np.ndarray, labels: np.ndarray, name: str):
    """The first `n_train` training images and labels (all when n_train is None)."""
    if n_train is None:
        return images, labels
    if not 1 <= n_train <= len(labels):
        raise ValueError(
            f"{name}: dataset.n_train={n_train} must be in [1, {len(labels)}] "
            "(the number of training images) or null"
        )
    return images[:n_train], labels[:n_train]


@dataclass
class PixelOptions:
    """What every image dataset read pixel by pixel takes."""

    permute: bool = MISSING
    permute_seed: int = seed()
    size_chunk: int = size()
    normalize: bool = MISSING


@dataclass
class FileImageOptions(PixelOptions):
    """What every image dataset read from files takes."""

    data_dir: str = MISSING
    download: bool = MISSING
    n_train: Optional[int] = spec(ge=1)


class ImageTask(TensorTask):
    """Classification of images read pixel by pixel (N, P, C), labels (N,): the shared facts
    of the image datasets (their pixel layout and sizes) and the construction (permutation,
    chunking) from the decoded, possibly standardised, pixels.

    Subclasses set `pixels` (P), `channels` (C) and `images` (the training and test images
    of the full dataset), and build the pixels in `__init__`.
    """

    pixels: int
    channels: int = 1
    images: tuple[int, int]

    def __init__(
        self,
        train: tuple[Tensor, Tensor],
        test: tuple[Tensor, Tensor],
        *,
        size_chunk: int,
        permute: bool,
        permute_seed: int,
    ):
        (x_train, y_train), (x_test, y_test) = train, test
        perm = fixed_permutation(x_train.shape[1], permute_seed) if permute else None
        super().__init__(
            self.name,
            to_sequences(x_train, size_chunk, perm),
            y_train,
            to_sequences(x_test, size_chunk, perm),
            y_test,
            output_size=N_CLASSES,
        )

    @classmethod
    def layout(cls, options: dict) -> tuple[int, int]:
        """(P, C): the pixel positions read in order and the values each holds."""
        return cls.pixels, cls.channels

    @classmethod
    def check_rules(cls, options):
        check_chunk(cls.layout(options)[0], options["size_chunk"])

    @classmethod
    def steps(cls, options):
        return cls.layout(options)[0] // options["size_chunk"]

    @classmethod
    def shape(cls, options):
        n_train, n_test = cls.images
        if options.get("n_train") is not None:
            n_train = min(n_train, options["n_train"])
        (pixels, channels), chunk = cls.layout(options), options["size_chunk"]
        steps, inputs = pixels // chunk, chunk * channels
        return Shape(n_train, n_test, min(1000, n_train), steps, inputs, N_CLASSES, False, FLOAT)


def _labels(y: np.ndarray) -> Tensor:
    return torch.as_tensor(y, dtype=torch.int64)


def _unit(x: np.ndarray) -> Tensor:
    """uint8 pixels to float32 in [0, 1]."""
    return torch.as_tensor(x, dtype=torch.float32) / 255.0


# --- decoding cache ---------------------------------------------------------------------


@functools.lru_cache(maxsize=4)
def _decode_cached(decode: Callable, paths: tuple[Path, ...], stamp: tuple):
    return decode(paths)


def decode_once(decode: Callable, paths: Sequence[Path]):
    """decode(paths), computed once per process and kept until one of the files changes.
    The cached arrays are shared: callers must not modify them in place."""
    stamp = tuple((p.stat().st_mtime_ns, p.stat().st_size) for p in paths)
    return _decode_cached(decode, tuple(paths), stamp)


# --- scikit-learn digits ------------------------------------------------------------------


@functools.cache
def _load_digits() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    return bunch.data, bunch.target  # (1797, 64) in 0..16, (1797,)


@dataclass
class DigitsOptions(PixelOptions):
    """conf/dataset/digits.yaml."""

    name: str = spec(choices=("digits",))
    test_fraction: float = spec(gt=0, lt=1)
    split_seed: int = seed()


DIGITS_IMAGES = 1797  # scikit-learn's bundled 8x8 digits


class Digits(ImageTask):
    """scikit-learn's 1797 bundled 8x8 digits, pixel by pixel: T = 64 / size_chunk, pixels
    scaled to [0, 1] (standardised with STANDARDIZATION when `normalize`), a stratified
    train/test split fixed by `split_seed`. Offline and fast: the default real-data task of the
    tests and the offline stand-in for MNIST."""

    name = "digits"
    label = "digits 8x8 as a stand-in for MNIST"
    Options = DigitsOptions
    pixels = 64
    images = (1348, 449)  # the default split (test_fraction 0.25)

    def __init__(
        self,
        size_chunk: int = 1,
        test_fraction: float = 0.25,
        split_seed: int = 0,
        permute: bool = False,
        permute_seed: int = 0,
        normalize: bool = False,
    ):
        from sklearn.model_selection import train_test_split

        order = dict(size_chunk=size_chunk, permute=permute, permute_seed=permute_seed)
        split = dict(test_fraction=test_fraction, split_seed=split_seed)
        self.check_options(dict(name=self.name, **split, **order, normalize=normalize))
        x, y = _load_digits()
        train_idx, test_idx = train_test_split(
            np.arange(len(y)), test_size=test_fraction, random_state=split_seed, stratify=y
        )
        pixels = torch.as_tensor(x, dtype=torch.float32).unsqueeze(-1) / 16.0  # (1797, 64, 1)
        if normalize:
            pixels = standardize(self.name, pixels)
        labels = _labels(y)
        train, test = (pixels[train_idx], labels[train_idx]), (pixels[test_idx], labels[test_idx])
        super().__init__(train, test, **order)

    @classmethod
    def check_rules(cls, options):
        """The stratified split needs every class on both sides."""
        super().check_rules(options)
        n_test = math.ceil(options["test_fraction"] * DIGITS_IMAGES)
        if min(n_test, DIGITS_IMAGES - n_test) < N_CLASSES:
            raise ConfigError(
                f"dataset.test_fraction={options['test_fraction']} leaves fewer than "
                f"{N_CLASSES} of the {DIGITS_IMAGES} images on one side of the "
                "split; expected a number in [0.006, 0.994]"
            )


# --- MNIST and Fashion-MNIST (IDX files) ------------------------------------------------


class IdxSource(NamedTuple):
    """Where to download a dataset's IDX files, and the MD5 digests of the gzipped files."""

    mirrors: tuple[str, ...]
    md5: dict[str, str]


IDX_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)
IDX_SOURCES = {
    "mnist": IdxSource(
        mirrors=(
            "https://ossci-datasets.s3.amazonaws.com/mnist/",
            "https://storage.googleapis.com/cvdf-datasets/mnist/",
        ),
        md5={
            "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
            "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
            "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
            "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
        },
    ),
    "fashion_mnist": IdxSource(
        mirrors=("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
        md5={
            "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
            "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
            "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
            "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
        },
    ),
}
IMAGE_SHAPE = (28, 28)


def read_idx(path: Path) -> np.ndarray:
    """Parse an IDX file of unsigned bytes (gzipped when the name ends in .gz): magic number
    0x0000080D (D dimensions), D big-endian uint32 sizes, then the data. Raises ValueError
    naming the file when it is corrupt or truncated."""
    try:
        raw = path.read_bytes()
        if path.suffix == ".gz":
            raw = gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as e:  # BadGzipFile is an OSError
        raise DataFileError(f"{path}: unreadable gzip data ({e})") from e
    if len(raw) < 4 or raw[:3] != b"\x00\x00\x08":
        raise DataFileError(
            f"{path}: bad magic number 0x{raw[:4].hex()}, expected 0x0000080D "
            "(an IDX file of unsigned bytes with D dimensions)"
        )
    header = 4 + 4 * raw[3]
    if len(raw) < header:
        raise DataFileError(f"{path}: truncated IDX header ({len(raw)} bytes)")
    dims = struct.unpack(f">{raw[3]}I", raw[4:header])
    expected = header + int(np.prod(dims))
    if len(raw) != expected:
        raise DataFileError(
            f"{path}: {len(raw)} bytes, expected {expected} for an IDX array of "
            f"shape {dims} (truncated or corrupt file)"
        )
    return np.frombuffer(raw, np.uint8, offset=header).reshape(dims).copy()


def _flat(images: np.ndarray) -> Tensor:
    """uint8 images (N, 28, 28) to pixels (N, 784, 1) in [0, 1]."""
    return _unit(images).reshape(len(images), -1, 1)


def _decode_idx(paths: tuple[Path, ...]) -> tuple[np.ndarray, ...]:
    """(train images (N, 28, 28), train labels (N,), test images, test labels), checked."""
    arrays = [read_idx(p) for p in paths]
    for images, labels, image_path, label_path in zip(arrays[::2], arrays[1::2], paths[::2], paths[1::2]):
        if len(images) == 0:
            raise DataFileError(f"{image_path}: holds no images")
        if images.ndim != 3 or images.shape[1:] != IMAGE_SHAPE:
            raise DataFileError(f"{image_path}: images of shape {images.shape[1:]}, expected {IMAGE_SHAPE}")
        if labels.ndim != 1 or len(labels) != len(images):
            raise DataFileError(
                f"{label_path}: labels of shape {labels.shape} do not match the "
                f"{len(images)} images of {image_path.name}"
            )
        if labels.max(initial=0) >= N_CLASSES:
            raise DataFileError(f"{label_path}: label {labels.max()} outside 0..{N_CLASSES - 1}")
    return tuple(arrays)


def _idx_paths(name: str, folder: Path, download: bool) -> list[Path]:
    """The four IDX files in `folder` (plain or gzipped), downloaded first when missing."""
    source = IDX_SOURCES[name]
    found = {
        base: next((p for p in (folder / base, folder / f"{base}.gz") if p.is_file()), None)
        for base in IDX_FILES
    }
    missing = [base for base, path in found.items() if path is None]
    if missing and not download:
        raise missing_files_error(
            name, folder, [f"{b}.gz (or {b})" for b in missing], " or ".join(source.mirrors)
        )
    for base in missing:
        file = f"{base}.gz"
        found[base] = fetch([m + file for m in source.mirrors], folder / file, source.md5[file], dataset=name)
    return [found[base] for base in IDX_FILES]


@dataclass
class IdxOptions(FileImageOptions):
    """conf/dataset/mnist.yaml, fashion_mnist.yaml."""

    name: str = spec(choices=tuple(IDX_SOURCES))


class IdxImages(ImageTask):
    """A 28x28 grey-level dataset in the MNIST IDX format, pixel by pixel (T = 784 /
    size_chunk), from `data_dir` (a user path; downloaded there when `download`); `normalize`
    standardises with the dataset's mean and std in STANDARDIZATION."""

    Options = IdxOptions
    reads_files = True

    @classmethod
    def files(cls, options: dict) -> list[Path]:
        return _idx_paths(cls.name, data_folder(options["data_dir"]), download=False)

    pixels = IMAGE_SHAPE[0] * IMAGE_SHAPE[1]
    images = (60_000, 10_000)

    def __init__(
        self,
        data_dir: str,
        download: bool = False,
        permute: bool = False,
        permute_seed: int = 0,
        size_chunk: int = 1,
        normalize: bool = False,
        n_train: int | None = None,
    ):
        order = dict(size_chunk=size_chunk, permute=permute, permute_seed=permute_seed)
        files = dict(data_dir=data_dir, download=download, n_train=n_train)
        self.check_options(dict(name=self.name, **files, **order, normalize=normalize))
        folder = data_folder(data_dir)
        x_train, y_train, x_test, y_test = decode_once(_decode_idx, _idx_paths(self.name, folder, download))
        x_train, y_train = take_first(n_train, x_train, y_train, self.name)
        pixels = (lambda x: standardize(self.name, _flat(x))) if normalize else _flat
        super().__init__((pixels(x_train), _labels(y_train)), (pixels(x_test), _labels(y_test)), **order)


class MNIST(IdxImages):
    """MNIST pixel by pixel (permuted MNIST with permute=true); options as :class:`IdxImages`."""

    name = "mnist"
    label = "sequential MNIST"


class FashionMNIST(IdxImages):
    """Fashion-MNIST pixel by pixel; options as :class:`IdxImages`."""

    name = "fashion_mnist"
    label = "Fashion-MNIST"


# --- CIFAR-10 (python pickle batches) ------------------------------------------------------

CIFAR_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR_MD5 = "c58f30108f718f92721af3b95e74349a"
CIFAR_FOLDER = "cifar-10-batches-py"
CIFAR_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6)) + ("test_batch",)
CIFAR_VALUES = 3 * 32 * 32  # 1024 red, then 1024 green, then 1024 blue values, row-major
LUMA = (0.299, 0.587, 0.114)  # ITU-R BT.601 grey level from red, green, blue


def read_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One pickled CIFAR-10 batch: images (N, 3072) uint8 and labels (N,), read as numpy
    arrays and plain data only (`tpri.io.load_pickle`: a planted pickle never runs code)."""
    try:
        with open(path, "rb") as f:
            batch = load_pickle(f, encoding="bytes")
        images, labels = batch[b"data"], np.asarray(batch[b"labels"])
    except Exception as e:  # corrupt pickles fail in many ways
        raise DataFileError(f"{path}: not a readable CIFAR-10 batch ({type(e).__name__}: {e})") from e
    if not (
        isinstance(images, np.ndarray)
        and images.dtype == np.uint8
        and images.ndim == 2
        and images.shape[1] == CIFAR_VALUES
    ):
        raise DataFileError(f"{path}: b'data' must be a uint8 array of shape (N, {CIFAR_VALUES})")
    if labels.shape != (len(images),) or not np.isin(labels, range(N_CLASSES)).all():
        raise DataFileError(f"{path}: b'labels' must be {len(images)} integers in 0..{N_CLASSES - 1}")
    return images, labels


def _decode_cifar(paths: tuple[Path, ...]) -> tuple[np.ndarray, ...]:
    """(train images (50000, 3072), train labels, test images (10000, 3072), test labels)."""
    train = [read_cifar_batch(p) for p in paths[:-1]]
    test_images, test_labels = read_cifar_batch(paths[-1])
    for path, images in [*zip(paths[:-1], (x for x, _ in train)), (paths[-1], test_images)]:
        if len(images) == 0:
            raise DataFileError(f"{path}: holds no images")
    return (
        np.concatenate([x for x, _ in train]),
        np.concatenate([y for _, y in train]),
        test_images,
        test_labels,
    )


def _cifar_paths(folder: Path, download: bool) -> list[Path]:
    """The six batch files in `folder`, extracted from the downloaded archive when missing."""
    paths = [folder / CIFAR_FOLDER / b for b in CIFAR_BATCHES]
    missing = [p for p in paths if not p.is_file()]
    if missing and not download:
        raise missing_files_error(
            "cifar10",
            folder / CIFAR_FOLDER,
            [p.name for p in missing],
            f"{CIFAR_URL} (extracted into {folder})",
        )
    if missing:
        archive = folder / CIFAR_URL.rsplit("/", 1)[1]
        if archive.is_file():
            check_md5(archive, CIFAR_MD5)
        else:
            fetch([CIFAR_URL], archive, CIFAR_MD5, dataset="cifar10")
        extract_files(archive, {f"{CIFAR_FOLDER}/{p.name}": p for p in missing})
    return paths


def _cifar_pixels(x: np.ndarray, grayscale: bool, channels_as_steps: bool, normalize: bool) -> Tensor:
    """Rows (N, 3072) to pixels (N, P, C): (N, 3072, 1) channel planes one value at a time,
    (N, 1024, 1) grey levels, or (N, 1024, 3) red-green-blue pixels; with `normalize` each
    channel is standardised first (grey levels: the luma of the standardised channels)."""
    x = _unit(x).reshape(len(x), 3, -1).transpose(1, 2)  # (N, 1024, 3)
    if normalize:
        x = standardize("cifar10", x)
    if channels_as_steps:
        return x.transpose(1, 2).reshape(len(x), -1, 1)  # the red, green then blue plane
    return x @ torch.tensor(LUMA).unsqueeze(-1) if grayscale else x.contiguous()


@dataclass
class Cifar10Options(FileImageOptions):
    """conf/dataset/cifar10.yaml."""

    name: str = spec(choices=("cifar10",))
    grayscale: bool = MISSING
    channels_as_steps: bool = MISSING


class CIFAR10(ImageTask):
    """CIFAR-10 pixel by pixel from `data_dir`/cifar-10-batches-py (downloaded and extracted
    there when `download`). Three layouts:

    - default: T = 1024 / size_chunk steps of size_chunk RGB pixels (input_size 3 * size_chunk);
    - grayscale: T = 1024 / size_chunk steps of size_chunk grey levels (0.299 R + 0.587 G +
      0.114 B);
    - channels_as_steps (the paper's T = 3072 row): the raw row of the batch file, the red plane
      then the green then the blue, each raster-ordered, one value per step
      (T = 3072 / size_chunk).

    `permute` reorders the steps (pixels, or values with channels_as_steps) by a fixed seeded
    permutation; `normalize` standardises each of R, G, B with the authors' constants
    (STANDARDIZATION), before the layout is made.
    """

    name = "cifar10"
    label = "CIFAR-10"
    Options = Cifar10Options
    reads_files = True

    @classmethod
    def files(cls, options: dict) -> list[Path]:
        return _cifar_paths(data_folder(options["data_dir"]), download=False)

    pixels, channels = 1024, 3
    images = (50_000, 10_000)

    def __init__(
        self,
        data_dir: str,
        download: bool = False,
        grayscale: bool = False,
        channels_as_steps: bool = False,
        permute: bool = False,
        permute_seed: int = 0,
        size_chunk: int = 1,
        normalize: bool = False,
        n_train: int | None = None,
    ):
        order = dict(size_chunk=size_chunk, permute=permute, permute_seed=permute_seed)
        layout = dict(grayscale=grayscale, channels_as_steps=channels_as_steps)
        files = dict(data_dir=data_dir, download=download, n_train=n_train)
        self.check_options(dict(name=self.name, **files, **layout, **order, normalize=normalize))
        folder = data_folder(data_dir)
        x_train, y_train, x_test, y_test = decode_once(_decode_cifar, _cifar_paths(folder, download))
        x_train, y_train = take_first(n_train, x_train, y_train, self.name)
        pixels = functools.partial(_cifar_pixels, **layout, normalize=normalize)
        super().__init__((pixels(x_train), _labels(y_train)), (pixels(x_test), _labels(y_test)), **order)

    @classmethod
    def check_rules(cls, options):
        if options["grayscale"] and options["channels_as_steps"]:
            raise ConfigError(
                "dataset.grayscale=true and dataset.channels_as_steps=true exclude "
                "each other; set one of them to false"
            )
        super().check_rules(options)

    @classmethod
    def layout(cls, options):
        if options["channels_as_steps"]:
            return cls.pixels * cls.channels, 1
        return cls.pixels, 1 if options["grayscale"] else cls.channels

    @classmethod
    def variant(cls, options):
        if str(options.get("grayscale", False)).lower() in ("true", "1", "1.0"):
            return ["(grey levels)"], []
        if str(options.get("channels_as_steps", False)).lower() in ("true", "1", "1.0"):
            return ["(colour planes as steps)"], []
        return [], []


# the names of the classes as functions (tpri.data.mnist(data_dir=...))
digits, mnist, fashion_mnist, cifar10 = Digits, MNIST, FashionMNIST, CIFAR10
