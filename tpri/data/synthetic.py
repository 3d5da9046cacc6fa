"""Long-range synthetic tasks of Manchev & Spratling (JMLR 2020), used by the TP paper:
the temporal-order problem and the adding problem. Batches are generated on the fly from a
seeded generator, on that generator's device; the test set and the train-evaluation sample
come from their own seeds (on the CPU: move them where the model is)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from omegaconf import MISSING
from torch import Tensor

from tpri.data.base import Shape, Task
from tpri.spec import ConfigError, seed, size, spec

N_SYMBOLS = 6  # temporal order: symbols 0/1 carry the bits, 2..5 are distractors
BYTES_PER_INPUT = 14  # int64 symbols and their int64 one-hot before the float copy


@dataclass
class SyntheticOptions:
    """What both synthetic tasks take (conf/dataset/temporal_order.yaml, adding.yaml)."""

    length: int = size()
    variable_length: bool = MISSING
    test_size: int = size()
    eval_size: int = size()
    test_seed: int = seed()


@dataclass
class TemporalOrderOptions(SyntheticOptions):
    name: str = spec(choices=("temporal_order",))
    bits: int = spec(choices=(1, 3))


@dataclass
class AddingOptions(SyntheticOptions):
    name: str = spec(choices=("adding",))


def _window(length: int, lo: float, hi: float) -> tuple[int, int]:
    """Integer positions [ceil(lo*T), ceil(hi*T)) for a marker (empty when T is too short)."""
    return math.ceil(lo * length), math.ceil(hi * length)


def _windows_fit(length: int, windows) -> bool:
    return all(stop > start for start, stop in (_window(length, lo, hi) for lo, hi in windows))


class _SyntheticTask(Task):
    """Shared plumbing: fixed test / eval sets from their own seeds, optional variable length
    (each batch then has a length drawn uniformly in [T, 1.1T], the same for the whole batch)."""

    def __init__(self, length: int, variable_length: bool, test_size: int, eval_size: int, test_seed: int):
        self.length, self.variable_length = length, variable_length
        g = torch.Generator().manual_seed(test_seed)
        self._test = self.generate(test_size, length, g)
        self._eval = self.generate(eval_size, length, g)

    @classmethod
    def windows(cls, options: dict) -> tuple[tuple[float, float], ...]:
        """The marker windows [lo T, hi T) of these options, as fractions of T."""
        raise NotImplementedError

    @classmethod
    def check_rules(cls, options):
        """Every marker window must hold a position: T at least the shortest that fits."""
        windows = cls.windows(options)
        shortest = next(t for t in range(1, 1000) if _windows_fit(t, windows))
        if options["length"] < shortest or not _windows_fit(options["length"], windows):
            raise ConfigError(
                f"dataset.length={options['length']} is too short for the marker "
                f"windows of {cls.name}; expected an integer >= {shortest}"
            )

    @classmethod
    def shape(cls, options):
        length = math.ceil(1.1 * options["length"]) if options["variable_length"] else options["length"]
        sizes = options["test_size"], options["eval_size"]
        return Shape(0, *sizes, length, cls.input_size, cls.outputs(options), False, BYTES_PER_INPUT)

    @classmethod
    def outputs(cls, options: dict) -> int:
        """The number of classes or outputs."""
        return cls.output_size

    def generate(self, batch_size: int, length: int, generator: torch.Generator):
        raise NotImplementedError

    def sample(self, batch_size, generator):
        """A batch on the generator's device (drawn there: no host transfer)."""
        length = self.length
        if self.variable_length:  # the length sets the shape: one host read per batch
            longest = int(1.1 * self.length)
            length = int(
                torch.randint(self.length, longest + 1, (1,), generator=generator, device=generator.device)
            )
        return self.generate(batch_size, length, generator)

    def test_set(self):
        return self._test

    def train_eval_set(self):
        return self._eval


def _positions(batch_size: int, window: tuple[int, int], generator) -> Tensor:
    return torch.randint(window[0], window[1], (batch_size,), generator=generator, device=generator.device)


class TemporalOrderTask(_SyntheticTask):
    """Temporal order: classify the order of 2 (`bits=1`, 4 classes) or 3 (`bits=3`, 8 classes)
    bit symbols hidden among distractors.

    Inputs (B, T, 6) one-hot; symbols 2..5 are distractors drawn uniformly; symbol 0 or 1 is
    placed at a position uniform in [0.1T, 0.2T), [0.5T, 0.6T) and (bits=3) [0.6T, 0.7T).
    The class is the binary number the bits spell, first bit most significant.
    """

    name = "temporal_order"
    label = "temporal order"
    Options = TemporalOrderOptions
    objective = "classification"
    input_size = N_SYMBOLS
    WINDOWS = ((0.1, 0.2), (0.5, 0.6), (0.6, 0.7))

    def __init__(
        self,
        length: int = 60,
        bits: int = 1,
        variable_length: bool = False,
        test_size: int = 1000,
        eval_size: int = 1000,
        test_seed: int = 10_000,
    ):
        options = dict(length=length, bits=bits, variable_length=variable_length, test_size=test_size)
        self.check_options({"name": self.name, **options, "eval_size": eval_size, "test_seed": test_seed})
        self.n_markers = len(self.windows(options))
        self.output_size = self.outputs(options)
        super().__init__(length, variable_length, test_size, eval_size, test_seed)

    @classmethod
    def windows(cls, options):
        return cls.WINDOWS[: 2 if options.get("bits", 1) == 1 else 3]

    @classmethod
    def outputs(cls, options):
        return 2 ** len(cls.windows(options))

    @classmethod
    def variant(cls, options):
        bits = options.get("bits", 1)
        return ([f"({bits} bits)"], [f"bits{bits}"]) if int(bits) != 1 else ([], [])

    def generate(self, batch_size, length, generator):
        device = generator.device  # every tensor on the generator's device
        symbols = torch.randint(2, N_SYMBOLS, (batch_size, length), generator=generator, device=device)
        labels = torch.zeros(batch_size, dtype=torch.long, device=device)
        rows = torch.arange(batch_size, device=device)
        for lo, hi in self.WINDOWS[: self.n_markers]:
            pos = _positions(batch_size, _window(length, lo, hi), generator)
            bit = torch.randint(0, 2, (batch_size,), generator=generator, device=device)
            symbols[rows, pos] = bit
            labels = 2 * labels + bit
        x = torch.nn.functional.one_hot(symbols, N_SYMBOLS).float()  # (B, T, 6)
        return x, labels


class AddingTask(_SyntheticTask):
    """Adding problem: regress the mean of the two values marked in channel 0.

    Inputs (B, T, 2): channel 0 holds the markers (1 at one position uniform in [0, 0.1T) and
    one in [0.1T, 0.5T)), channel 1 values uniform in [0, 1). Target (B,) is the mean of the
    two marked values; "accuracy" counts |error| < 0.04 (the paper's rule).
    """

    name = "adding"
    label = "adding"
    Options = AddingOptions
    objective = "regression"
    input_size = 2
    output_size = 1
    WINDOWS = ((0.0, 0.1), (0.1, 0.5))

    def __init__(
        self,
        length: int = 30,
        variable_length: bool = False,
        test_size: int = 1000,
        eval_size: int = 1000,
        test_seed: int = 10_000,
    ):
        options = dict(length=length, variable_length=variable_length, test_size=test_size)
        self.check_options({"name": self.name, **options, "eval_size": eval_size, "test_seed": test_seed})
        super().__init__(length, variable_length, test_size, eval_size, test_seed)

    @classmethod
    def windows(cls, options):
        return cls.WINDOWS

    def generate(self, batch_size, length, generator):
        device = generator.device  # every tensor on the generator's device
        values = torch.rand(batch_size, length, generator=generator, device=device)
        markers = torch.zeros(batch_size, length, device=device)
        rows = torch.arange(batch_size, device=device)
        for lo, hi in self.WINDOWS:
            pos = _positions(batch_size, _window(length, lo, hi), generator)
            markers[rows, pos] = 1.0
        x = torch.stack([markers, values], dim=-1)  # (B, T, 2)
        y = (markers * values).sum(1) / 2
        return x, y
