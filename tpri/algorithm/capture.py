"""TP's linearized target sweep replayed as a CUDA graph.

The sweep is ~2T small kernels (T = 784 for sequential MNIST): launched one by one from Python,
a GPU iteration would be bound by launch overhead. A CUDA graph records them once and replays
them in one launch. The graph reads and writes fixed buffers, so each call copies its inputs in
(A^T, dl/dh_T and, for per-step losses, dl/dh) and the inverse writes its slopes straight into
the graph's E buffer, where the sweep turns them into the displacements (`linearized_sweep`,
defined here and run eagerly by `tpri.algorithm.tp` too; the caller finishes with `RNNInverse.mul_slope_`).

Policy: on CPU tensors, or when capture fails, `run` returns None and the caller sweeps eagerly
(same function, same numbers). A shape is captured the second time in a row it is seen, and one
graph is kept at a time, so variable-length batches fall back to eager sweeps instead of
accumulating graphs and their buffers.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import torch
from torch import Tensor


def linearized_sweep(
    E: Tensor,
    grad_last: Tensor,
    At: Tensor,
    tanh: bool,
    grad_steps: Tensor | None,
    lr_target: float,
    buffer: Tensor,
) -> Tensor:
    """The linearized rule for a tanh / identity RNN in one (T, B, d) buffer E:

        e_T = -lr_target g_T,   e_{k-1} = (e_k / a'_k) @ A^T  (- lr_target g_{k-1})

    tanh: E comes in holding the slopes s_k = 1 / a'_k and leaves holding f_k = e_k * s_k (each
    e_k multiplies its slope in place as soon as it is known, and f_k is what the next step
    reads), so the sweep needs no buffer beyond E; `RNNInverse.mul_slope_` turns f back into e.
    identity: E leaves holding e. Two kernels per step into preallocated memory (nothing is
    allocated, so a CUDA graph can record it). At (d, d), grad_steps (B, T, d) or None,
    buffer (B, d) scratch."""
    steps = E.unbind(0)
    T = len(steps)
    current = torch.mul(grad_last, -lr_target, out=buffer)  # e_T
    for k in range(T - 1, -1, -1):  # current holds e_k (step k, 0-based)
        if tanh:
            steps[k].mul_(current)  # f_k = s_k * e_k
        elif current is not steps[k]:
            steps[k].copy_(current)
        if k == 0:
            break
        current = torch.mm(steps[k], At, out=buffer if tanh else steps[k - 1])  # e_{k-1}
        if grad_steps is not None:
            current.add_(grad_steps[:, k - 1], alpha=-lr_target)
    return E


@dataclass(frozen=True)
class SweepKey:
    """Everything the recorded kernels depend on."""

    T: int
    B: int
    d: int
    dtype: torch.dtype
    device: torch.device
    tanh: bool  # E starts as the slopes (identity: no slope factor)
    per_step: bool  # grad_steps added at every step
    lr_target: float


class _Graph:
    """The fixed buffers of one key and the graph recorded on them."""

    def __init__(self, key: SweepKey):
        kw = dict(dtype=key.dtype, device=key.device)
        self.key = key
        self.E = torch.zeros(key.T, key.B, key.d, **kw)
        self.At = torch.zeros(key.d, key.d, **kw)
        self.grad_last = torch.zeros(key.B, key.d, **kw)
        self.grad_steps = torch.zeros(key.B, key.T, key.d, **kw) if key.per_step else None
        self.buffer = torch.zeros(key.B, key.d, **kw)

        def sweep():
            linearized_sweep(
                self.E, self.grad_last, self.At, key.tanh, self.grad_steps, key.lr_target, self.buffer
            )

        side = torch.cuda.Stream(key.device)  # warm-up off the default stream, as capture needs
        side.wait_stream(torch.cuda.current_stream(key.device))
        with torch.cuda.stream(side):
            for _ in range(2):
                sweep()
        torch.cuda.current_stream(key.device).wait_stream(side)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            sweep()

    def run(self, inverse, grad_last: Tensor, grad_steps: Tensor | None) -> Tensor:
        self.At.copy_(inverse.At)
        self.grad_last.copy_(grad_last)
        inverse.slope_inv_into(self.E)  # tanh: E starts as the slopes (identity: untouched)
        if self.grad_steps is not None:
            self.grad_steps.copy_(grad_steps)
        self.graph.replay()
        return self.E


class CapturedSweep:
    """The CUDA-graph cache of one TargetProp (at most one graph)."""

    def __init__(self):
        self.graph: _Graph | None = None
        self.last_key: SweepKey | None = None
        self.failed: set[SweepKey] = set()

    def run(self, inverse, grad_last: Tensor, grad_steps: Tensor | None, lr_target: float) -> Tensor | None:
        """E (T, B, d) from the graph, or None: sweep eagerly (CPU, first sight of a shape,
        capture failed)."""
        if grad_last.device.type != "cuda":
            return None
        T, B, d = inverse.h.shape
        key = SweepKey(
            T,
            B,
            d,
            grad_last.dtype,
            grad_last.device,
            inverse.activation == "tanh",
            grad_steps is not None,
            lr_target,
        )
        seen_before, self.last_key = key == self.last_key, key
        if self.graph is not None and self.graph.key == key:
            return self.graph.run(inverse, grad_last, grad_steps)
        if not seen_before or key in self.failed:
            return None
        self.graph = None  # free the old graph's buffers before recording the new one
        try:
            self.graph = _Graph(key)
        except RuntimeError as err:  # capture unsupported here: eager sweeps, same numbers
            self.failed.add(key)
            warnings.warn(f"TP sweep: CUDA graph capture failed, sweeping eagerly ({err})", stacklevel=3)
            return None
        return self.graph.run(inverse, grad_last, grad_steps)
