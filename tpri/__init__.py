"""tpri: Target Propagation via Regularized Inversion for recurrent networks.

Library use (no Hydra needed)::

    import torch, tpri
    task = tpri.data.make_task("temporal_order", length=60)
    model = tpri.RNN(task.input_size, 100, task.output_size)
    tp = tpri.TargetProp(lr_target=1e-2, reg=10.0)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    x, y = task.sample(20, torch.Generator().manual_seed(0))
    opt.zero_grad(); loss = tp.backward(model, x, y, task.loss); opt.step()
"""

from importlib import metadata

from tpri import data
from tpri.algorithm.dtp import DTP
from tpri.algorithm.gru import GRU, GRUInverse
from tpri.algorithm.inverse import Diverged, RNNInverse
from tpri.algorithm.models import RNN
from tpri.algorithm.text_model import TextRNN
from tpri.algorithm.tp import Backprop, TargetProp
from tpri.io import UnreadableFile
from tpri.run import load_model

try:  # the one version string is pyproject.toml's, read from the installed package's metadata
    __version__ = metadata.version("tpri")
except metadata.PackageNotFoundError:  # a checkout on PYTHONPATH that was never installed
    __version__ = "unknown"

__all__ = [
    "RNN",
    "GRU",
    "TextRNN",
    "TargetProp",
    "Backprop",
    "DTP",
    "Diverged",
    "RNNInverse",
    "GRUInverse",
    "data",
    "load_model",
    "UnreadableFile",
    "__version__",
]
