"""A rough estimate of the peak memory of a job, from its config alone (nothing is allocated):
the parameters, the dataset held in memory, one training step and one evaluation. The facts
come from their owners: the dataset's shape from its Task class (`Task.shape`), the widths a
step keeps from the model class, whether layer inverses are kept from the direction class.

The estimate follows the shapes the code creates (float32 values, int64 token ids): a training
step keeps a few tensors (B, T, d) per method (states, adjoints or targets and displacements,
gate activations for the GRU), a text model's per-step logits (B, T, V), and an evaluation
holds one chunk's states and predictions at a time (tpri.data.base.eval_chunk). It is
calibrated on the peak RSS a job adds to a process that imported torch (tests/measure_memory.py
prints the ratios); the imported libraries' own memory (a few hundred MB) is not counted, their
first use is (RUNTIME).
"""

from __future__ import annotations

import math

from tpri.configs.build import DIRECTIONS, MODELS
from tpri.data import TASKS
from tpri.data.base import FLOAT, Shape, eval_chunk

# what torch's first forward and backward add to a process (thread pools, kernel workspaces):
# the gap between the measured peak of CPU jobs and their tensors, about 170 MB
RUNTIME = 150 * 2**20


def _parameters(cfg: dict, shape: Shape) -> int:
    d, model = cfg["model"]["hidden"], cfg["model"]
    cls, direction = MODELS[model["name"]], DIRECTIONS[cfg["optimizer"]["name"]]
    n = model.get("embedding_dim", shape.inputs)
    recurrent = cls.GATES * (d * d + d * n + 2 * d) + d * shape.outputs + shape.outputs
    embedding = shape.outputs * n if cls.token_inputs else 0  # one row per word
    inverse = cls.GATES * 4 * d * d if direction.step_factors else 0
    # values, gradients and up to two optimizer states each; the layer inverses' d x d factors
    return FLOAT * (4 * (recurrent + embedding) + inverse)


CLOSED_FORM_FLOATS = 2  # TP's closed-form updates keep the states and the displacements
# the layer inverses' per-step d x d factors a TP step holds (T of them, a few each): calibrated
# on the winner corner (MNIST T=784, d=512, B=512), where they outweigh the (B, T, d) tensors
INVERSE_STEP_FLOATS = 4
DIAGNOSTIC_FLOATS = 2  # the update's displacements and BP's adjoints, kept for the diagnostics


def _per_step_state(cfg: dict) -> int:
    """Floats of width d a training step keeps per sequence and step: autograd's graph for BP;
    for TP and DTP the states and displacements only when the model updates in closed form
    (`local_backward`, `graph_backward`: local mode, graph mode off CUDA; the rest works in
    chunks of tpri.algorithm.inverse.CHUNK_ELEMENTS), else autograd's graph and the targets' floats."""
    cls, direction = MODELS[cfg["model"]["name"]], DIRECTIONS[cfg["optimizer"]["name"]]
    if not direction.inverts:
        return cls.BP_FLOATS
    local = cfg["optimizer"].get("update", "graph") == "local"
    closed = hasattr(cls, "local_backward") if local else hasattr(cls, "graph_backward")
    if closed and (local or cfg.get("device", "cpu") != "cuda"):
        step = CLOSED_FORM_FLOATS
    else:
        step = cls.BP_FLOATS + cls.TP_FLOATS
    step = max(step, direction.REVERSE_FLOATS)  # DTP: its reverse layer's training step
    if cfg.get("log_gradients") or cfg.get("log_cosine"):
        # after the step, BP's graph on the same batch beside the displacements and adjoints
        return max(step, cls.BP_FLOATS + DIAGNOSTIC_FLOATS)
    return step


def _training(cfg: dict, shape: Shape) -> int:
    batch, d = cfg["batch_size"], cfg["model"]["hidden"]
    embedded = cfg["model"].get("embedding_dim", 0)
    per_step = shape.inputs * shape.bytes_per_input + 2 * FLOAT * embedded + FLOAT * d * _per_step_state(cfg)
    logits = 3 * FLOAT * shape.outputs * (shape.length if shape.per_step else 1)  # + softmax, grad
    inverse = (
        INVERSE_STEP_FLOATS * FLOAT * shape.length * d * d
        if DIRECTIONS[cfg["optimizer"]["name"]].step_factors
        else 0
    )
    return batch * (shape.length * per_step + logits) + inverse


def _evaluation(cfg: dict, shape: Shape) -> int:
    """One forward pass of an evaluation, the largest of its chunks (tpri.data.base.eval_chunk):
    its states (EVAL_FLOATS of width d per step, a text model's embedded tokens), its predictions
    and their log-softmax (the cross-entropy's); beside them what a TP or DTP step leaves held
    (the last batch's displacements). The chunks' losses are plain numbers: one chunk at a time."""
    d = cfg["model"]["hidden"]
    floats = MODELS[cfg["model"]["name"]].EVAL_FLOATS
    chunk = min(eval_chunk(shape.outputs, shape.length, shape.per_step), max(shape.n_test, shape.n_eval))
    embedded = cfg["model"].get("embedding_dim", 0)
    states = chunk * shape.length * FLOAT * (d * floats + embedded)
    direction = DIRECTIONS[cfg["optimizer"]["name"]]
    kept = cfg["batch_size"] * shape.length * FLOAT * d if direction.inverts else 0
    predictions = 2 * chunk * FLOAT * shape.outputs * (shape.length if shape.per_step else 1)
    return states + predictions + kept


def _dataset(shape: Shape) -> int:
    sequences = shape.n_train + shape.n_test + shape.n_eval
    copies = 1 if shape.n_train == 0 else 3  # decoded, scaled, reordered
    return copies * sequences * shape.length * shape.inputs * shape.bytes_per_input


def estimate_memory(cfg: dict) -> dict[str, int]:
    """Estimated bytes by part of a checked config: runtime, parameters, dataset, training
    batch, evaluation. The peak is the first three + the larger of the last two (`peak`)."""
    shape = TASKS[cfg["dataset"]["name"]].shape(cfg["dataset"])
    return {
        "runtime": RUNTIME,
        "parameters": _parameters(cfg, shape),
        "dataset": _dataset(shape),
        "training batch": _training(cfg, shape),
        "evaluation": _evaluation(cfg, shape),
    }


def peak(parts: dict[str, int]) -> int:
    fixed = parts.get("runtime", 0) + parts["parameters"] + parts["dataset"]
    return fixed + max(parts["training batch"], parts["evaluation"])


# --- time -----------------------------------------------------------------------------------

# one CPU thread, this machine (README's benchmark table, --iters 50): about 35 us per time step
# of a small batch plus 0.16 ns per multiply-add of the (B, d) x (d, d + n) step products
STEP_SECONDS, MAC_SECONDS = 35e-6, 1.6e-10
START_SECONDS = 2.0  # a job's own start: building the task, the model, the evaluation sets


def estimate_seconds(cfg: dict) -> float:
    """A rough wall time of a checked config on one CPU thread: its iterations, evaluations
    and start (within a factor of about 2 of the benchmark's cells and of the default job)."""
    shape = TASKS[cfg["dataset"]["name"]].shape(cfg["dataset"])
    model, batch = cfg["model"], cfg["batch_size"]
    d = model["hidden"]
    n = model.get("embedding_dim", shape.inputs)
    gates = MODELS[model["name"]].GATES
    macs = gates * d * (d + n) + (d * shape.outputs if shape.per_step else 0)
    step = shape.length * (STEP_SECONDS + MAC_SECONDS * batch * macs)
    evaluated = shape.n_test + shape.n_eval
    chunk = eval_chunk(shape.outputs, shape.length, shape.per_step)
    chunks = math.ceil(shape.n_test / chunk) + math.ceil(shape.n_eval / chunk)
    evaluation = shape.length * (chunks * STEP_SECONDS + MAC_SECONDS / 3 * evaluated * macs)
    evaluations = cfg["max_iter"] // cfg["eval_every"] + 1
    return START_SECONDS + cfg["max_iter"] * step + evaluations * evaluation
