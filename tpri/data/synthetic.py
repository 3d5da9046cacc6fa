"""Long-range synthetic tasks of Manchev & Spratling (JMLR 2020), used by the TP paper:
the temporal-order problem and the adding problem. Batches are generated on the fly from a
seeded generator, on that generator's device; the test set and the train-evaluation sample
come from their own seeds (on the CPU: move them where the model is)."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from tpri.data.base import Task

N_SYMBOLS = 6  # temporal order: symbols 0/1 carry the bits, 2..5 are distractors


def _window(length: int, lo: float, hi: float, what: str) -> tuple[int, int]:
    """Integer positions [ceil(lo*T), ceil(hi*T)) for a marker; an error if it is empty."""
    start, stop = math.ceil(lo * length), math.ceil(hi * length)
    if stop <= start:
        raise ValueError(
            f"dataset.length={length} is too short for the {what} marker window "
            f"[{lo}T, {hi}T); use a longer sequence"
        )
    return start, stop


class _SyntheticTask(Task):
    """Shared plumbing: fixed test / eval sets from their own seeds, optional variable length
    (each batch then has a length drawn uniformly in [T, 1.1T], the same for the whole batch)."""

    def __init__(
        self,
        length: int,
        variable_length: bool = False,
        test_size: int = 1000,
        eval_size: int = 1000,
        test_seed: int = 10_000,
    ):
        if not isinstance(length, int) or length < 1:
            raise ValueError(f"dataset.length must be a positive integer, got {length!r}")
        self.length, self.variable_length = length, variable_length
        self._check_length(length)
        g = torch.Generator().manual_seed(test_seed)
        self._test = self.generate(test_size, length, g)
        self._eval = self.generate(eval_size, length, g)

    def _check_length(self, length: int) -> None:
        raise NotImplementedError

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
    objective = "classification"
    input_size = N_SYMBOLS
    WINDOWS = ((0.1, 0.2), (0.5, 0.6), (0.6, 0.7))

    def __init__(self, length: int = 60, bits: int = 1, **kwargs):
        if bits not in (1, 3):
            raise ValueError(f"dataset.bits must be 1 (4 classes) or 3 (8 classes), got {bits!r}")
        self.n_markers = 2 if bits == 1 else 3
        self.output_size = 2**self.n_markers
        super().__init__(length, **kwargs)

    def _check_length(self, length):
        for lo, hi in self.WINDOWS[: self.n_markers]:
            _window(length, lo, hi, "temporal-order")

    def generate(self, batch_size, length, generator):
        device = generator.device  # every tensor on the generator's device
        symbols = torch.randint(2, N_SYMBOLS, (batch_size, length), generator=generator, device=device)
        labels = torch.zeros(batch_size, dtype=torch.long, device=device)
        rows = torch.arange(batch_size, device=device)
        for lo, hi in self.WINDOWS[: self.n_markers]:
            pos = _positions(batch_size, _window(length, lo, hi, "temporal-order"), generator)
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
    objective = "regression"
    input_size = 2
    output_size = 1
    WINDOWS = ((0.0, 0.1), (0.1, 0.5))

    def __init__(self, length: int = 30, **kwargs):
        super().__init__(length, **kwargs)

    def _check_length(self, length):
        for lo, hi in self.WINDOWS:
            _window(length, lo, hi, "adding")

    def generate(self, batch_size, length, generator):
        device = generator.device  # every tensor on the generator's device
        values = torch.rand(batch_size, length, generator=generator, device=device)
        markers = torch.zeros(batch_size, length, device=device)
        rows = torch.arange(batch_size, device=device)
        for lo, hi in self.WINDOWS:
            pos = _positions(batch_size, _window(length, lo, hi, "adding"), generator)
            markers[rows, pos] = 1.0
        x = torch.stack([markers, values], dim=-1)  # (B, T, 2)
        y = (markers * values).sum(1) / 2
        return x, y
