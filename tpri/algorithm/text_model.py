"""A word-level language model: token embedding -> tanh RNN -> readout at every step.

It is `tpri.algorithm.models.RNN` run on embedded tokens, so TP reuses the RNN's layer inverses
(`tpri.algorithm.inverse.RNNInverse`) unchanged; since every state is read out (`per_step_loss`),
TargetProp gives every h_t its own local target (docs/methods.md, "Per-step losses").
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from tpri.algorithm.inverse import RNNInverse
from tpri.algorithm.models import RNN, RNNOptions, Sizes, autograd_local_backward
from tpri.spec import check_arguments, size, spec


@dataclass
class TextRNNOptions(RNNOptions):
    """TextRNN's options: the config section `model` (rnn_text)."""

    embedding_dim: int = size()
    freeze_embedding: bool = spec()


class TextRNN(RNN):
    """Embedding -> RNN -> linear readout of each state (next-token logits).

        x_t = E[token_t],  h_t = a(W h_{t-1} + U x_t + b),  y_hat_t = V h_t + c

    Inputs are token ids (B, T) int64, predictions (B, T, V). `self.embedding` is the
    `nn.Embedding` E (frozen by default, as in the paper: `requires_grad` False, so no
    optimizer moves it); `self.rnn` and `self.readout` are as in `tpri.algorithm.models.RNN`.

    Args:
        input_size: V, the vocabulary size.
        hidden: d, the width of the hidden state.
        output_size: number of next-token classes (the vocabulary size).
        embedding_dim: n, the width of the embedding (the RNN's input size).
        freeze_embedding: keep the (randomly initialised) embedding fixed.
        activation: "tanh" or "identity" (usable by TP) or "relu" (BP only).
    """

    per_step_loss = True  # every step's prediction enters the loss
    token_inputs = True  # inputs are token ids (B, T)
    label = "RNN language model"
    # evaluation computes the states in place (`RNN.states_in_place`): one float of width d
    # per step (the embedded tokens count apart, tpri.configs.resources)
    EVAL_FLOATS = 1
    Options = TextRNNOptions

    def __init__(
        self,
        input_size: int,
        hidden: int,
        output_size: int,
        embedding_dim: int = 1024,
        freeze_embedding: bool = True,
        activation: str = "tanh",
    ):
        options = dict(embedding_dim=embedding_dim, freeze_embedding=freeze_embedding)
        check_arguments(dict(input_size=input_size, **options), TextRNNOptions, Sizes)
        super().__init__(embedding_dim, hidden, output_size, activation)
        self.embedding = nn.Embedding(input_size, embedding_dim)
        self.embedding.weight.requires_grad_(not freeze_embedding)

    def check_inputs(self, x: Tensor) -> None:
        """ValueError unless x is token ids (B, T) in [0, vocabulary)."""
        vocabulary = self.embedding.num_embeddings
        if x.dim() != 2 or x.is_floating_point() or x.is_complex() or x.dtype == torch.bool:
            raise ValueError(
                f"inputs of shape {tuple(x.shape)} and dtype {x.dtype}: {type(self).__name__} reads "
                "token ids, integers of shape (batch, steps)"
            )
        if bool(((x < 0) | (x >= vocabulary)).any()):
            raise ValueError(f"inputs hold token ids outside [0, {vocabulary}) (the model's vocabulary)")

    def states(self, x: Tensor) -> Tensor:
        """All hidden states (B, T, d) for token ids x (B, T)."""
        return super().states(self.embedding(x))

    def cell(self, h_prev: Tensor, x: Tensor) -> Tensor:
        """One recurrence step on token ids: h_prev (..., d), x (...) -> (..., d)."""
        return super().cell(h_prev, self.embedding(x))

    def local_backward(self, x: Tensor, hs: Tensor, E: Tensor) -> None:
        """TP's update="local": the RNN's closed form on the embedded tokens; with a trainable
        embedding, autograd through one step batched over t, so the embedding gets its share."""
        if self.embedding.weight.requires_grad:
            autograd_local_backward(self, x, hs, E)
        else:
            super().local_backward(self.embedding(x), hs, E)

    def graph_backward(self, x: Tensor, hs: Tensor, E: Tensor) -> None:
        """TP's update="graph": the RNN's closed form on the embedded tokens; with a trainable
        embedding, autograd through a fresh forward (one more forward pass), so the embedding
        gets its share."""
        if self.embedding.weight.requires_grad:
            with torch.enable_grad():
                self.states(x).backward(-E)
        else:
            super().graph_backward(self.embedding(x), hs, E)

    def predict(self, hs: Tensor) -> Tensor:
        """Readout of every state: (B, T, d) -> (B, T, output_size)."""
        return self.readout(hs)

    def forward(self, x: Tensor) -> Tensor:
        """Every state is read out: predict(states(x)) (not the RNN's last-state shortcut)."""
        return self.predict(self.states(x))

    def regularized_inverse(self, x: Tensor, hs: Tensor, reg: float) -> RNNInverse:
        """The RNN's layer inverses on the embedded tokens (one factorisation)."""
        return super().regularized_inverse(self.embedding(x).detach(), hs, reg)
