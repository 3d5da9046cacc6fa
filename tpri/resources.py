"""A rough estimate of the peak memory of a job, from its config alone (nothing is allocated):
the parameters, the dataset held in memory, one training step and one evaluation.

The estimate follows the shapes the code creates (float32 values, int64 token ids): a training
step keeps a few tensors (B, T, d) per method (states, adjoints or targets and displacements,
gate activations for the GRU), a text model's per-step logits (B, T, V), and an evaluation
concatenates the predictions of the whole evaluation set. Against the measured peak RSS of
CPU runs (temporal order, B = 5000 to 20000, BP, TP and GRU) it is within about 15%; the
libraries' own memory (torch, scikit-learn: a few hundred MB) is not counted.
"""

from __future__ import annotations

import math
from typing import NamedTuple

FLOAT, INDEX = 4, 8  # bytes of a float32 value, of an int64 token id
EVAL_CHUNK = 1000  # sequences per evaluation forward pass (tpri.run.job)
PTB_VOCAB = 10_000  # words of the Penn Treebank vocabulary (<eos> and <unk> included)
PTB_TOKENS = (930_000, 82_000)  # about the training and test tokens of the Penn Treebank files
IMAGES = {
    "digits": (1348, 449, 64, 1),
    "mnist": (60_000, 10_000, 784, 1),
    "fashion_mnist": (60_000, 10_000, 784, 1),
    "cifar10": (50_000, 10_000, 1024, 3),
}


class Shape(NamedTuple):
    """What the dataset gives the model."""

    n_train: int  # sequences held in memory for training (0: generated per batch)
    n_test: int  # sequences of the fixed test set
    n_eval: int  # sequences of the fixed training sample for the train loss
    length: int  # T, steps per sequence (the longest with variable length)
    inputs: int  # n, values per step (1 for token ids)
    outputs: int  # K, classes or outputs
    per_step: bool  # an output at every step (language model)
    bytes_per_input: int  # bytes of one input value in memory, generation copies included


def dataset_shape(data: dict, model: dict) -> Shape:
    name = data["name"]
    if name in ("temporal_order", "adding"):
        length = math.ceil(1.1 * data["length"]) if data["variable_length"] else data["length"]
        markers = 2 if data.get("bits") == 1 else 3
        inputs, outputs = (6, 2**markers) if name == "temporal_order" else (2, 1)
        # int64 symbols and their int64 one-hot before the float copy
        return Shape(0, data["test_size"], data["eval_size"], length, inputs, outputs, False, 14)
    if name == "ptb":
        tokens = [
            given if given is not None else default
            for given, default in zip((data["n_tokens"], data["n_test_tokens"]), PTB_TOKENS)
        ]
        n_train, n_test = ((t - 1) // data["length"] for t in tokens)
        return Shape(n_train, n_test, min(1000, n_train), data["length"], 1, PTB_VOCAB, True, INDEX)
    n_train, n_test, pixels, channels = IMAGES[name]
    if data.get("n_train") is not None:
        n_train = min(n_train, data["n_train"])
    if name == "cifar10" and data["grayscale"]:
        channels = 1
    if name == "cifar10" and data["channels_as_steps"]:
        pixels, channels = pixels * channels, 1
    chunk = data["size_chunk"]
    return Shape(n_train, n_test, min(1000, n_train), pixels // chunk, chunk * channels, 10, False, FLOAT)


def _parameters(cfg: dict, shape: Shape) -> int:
    d, model = cfg["model"]["hidden"], cfg["model"]
    n = model.get("embedding_dim", shape.inputs)
    gates = 3 if model["name"] == "gru" else 1
    recurrent = gates * (d * d + d * n + 2 * d) + d * shape.outputs + shape.outputs
    embedding = PTB_VOCAB * n if model["name"] == "rnn_text" else 0
    inverse = gates * 4 * d * d if cfg["optimizer"]["name"] in ("tp", "dtp") else 0
    # values, gradients and up to two optimizer states each; the layer inverses' d x d factors
    return FLOAT * (4 * (recurrent + embedding) + inverse)


def _per_step_state(cfg: dict) -> int:
    """Floats of width d a training step keeps per sequence and step."""
    gru = cfg["model"]["name"] == "gru"
    bp = 12 if gru else 5  # states, pre-activations, adjoints, workspace (and the gates)
    tp = 20 if gru else 6  # targets, displacements, slopes (and the port gains)
    return bp + (tp if cfg["optimizer"]["name"] in ("tp", "dtp") else 0)


def _training(cfg: dict, shape: Shape) -> int:
    batch, d = cfg["batch_size"], cfg["model"]["hidden"]
    embedded = cfg["model"].get("embedding_dim", 0)
    per_step = shape.inputs * shape.bytes_per_input + 2 * FLOAT * embedded + FLOAT * d * _per_step_state(cfg)
    logits = 3 * FLOAT * shape.outputs * (shape.length if shape.per_step else 1)  # + softmax, grad
    return batch * (shape.length * per_step + logits)


def _evaluation(cfg: dict, shape: Shape) -> int:
    d = cfg["model"]["hidden"]
    gates = 4 if cfg["model"]["name"] == "gru" else 1
    chunk = min(EVAL_CHUNK, max(shape.n_test, shape.n_eval))
    states = chunk * shape.length * FLOAT * d * gates
    per_seq = FLOAT * shape.outputs * (shape.length if shape.per_step else 1)
    # both splits' predictions, and the log-softmax of the larger one
    predictions = per_seq * (shape.n_test + shape.n_eval + max(shape.n_test, shape.n_eval))
    return states + predictions


def _dataset(shape: Shape) -> int:
    sequences = shape.n_train + shape.n_test + shape.n_eval
    copies = 1 if shape.n_train == 0 else 3  # decoded, scaled, reordered
    return copies * sequences * shape.length * shape.inputs * shape.bytes_per_input


def estimate_memory(cfg: dict) -> dict[str, int]:
    """Estimated bytes by part of a checked config: parameters, dataset, training batch,
    evaluation. The peak is parameters + dataset + the larger of the last two (`peak`)."""
    shape = dataset_shape(cfg["dataset"], cfg["model"])
    return {
        "parameters": _parameters(cfg, shape),
        "dataset": _dataset(shape),
        "training batch": _training(cfg, shape),
        "evaluation": _evaluation(cfg, shape),
    }


def peak(parts: dict[str, int]) -> int:
    return parts["parameters"] + parts["dataset"] + max(parts["training batch"], parts["evaluation"])


# --- time -----------------------------------------------------------------------------------

# one CPU thread, this machine (README's benchmark table, --iters 50): about 35 us per time step
# of a small batch plus 0.16 ns per multiply-add of the (B, d) x (d, d + n) step products
STEP_SECONDS, MAC_SECONDS = 35e-6, 1.6e-10
START_SECONDS = 2.0  # a job's own start: building the task, the model, the evaluation sets
LIBRARIES = 400e6  # resident memory of a process that imported torch and tpri (not in the estimate)


def estimate_seconds(cfg: dict) -> float:
    """A rough wall time of a checked config on one CPU thread: its iterations, evaluations
    and start (within a factor of about 2 of the benchmark's cells and of the default job)."""
    shape = dataset_shape(cfg["dataset"], cfg["model"])
    model, batch = cfg["model"], cfg["batch_size"]
    d = model["hidden"]
    n = model.get("embedding_dim", shape.inputs)
    gates = 3 if model["name"] == "gru" else 1
    macs = gates * d * (d + n) + (d * shape.outputs if shape.per_step else 0)
    step = shape.length * (STEP_SECONDS + MAC_SECONDS * batch * macs)
    evaluated = shape.n_test + shape.n_eval
    chunks = math.ceil(shape.n_test / EVAL_CHUNK) + math.ceil(shape.n_eval / EVAL_CHUNK)
    evaluation = shape.length * (chunks * STEP_SECONDS + MAC_SECONDS / 3 * evaluated * macs)
    evaluations = cfg["max_iter"] // cfg["eval_every"] + 1
    return START_SECONDS + cfg["max_iter"] * step + evaluations * evaluation
