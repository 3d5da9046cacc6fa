"""Every figure kind in one place. A kind's entry names the function making its figures (run by
`tpri-plot KIND`), the function writing its findings, its command-line options, its caption on the
report page and the sweeps (`conf/sweep/NAME.yaml`) it draws, with the options each sweep needs.

Functions are named as "module:function" and imported only when a figure is made, so that
reading the registry imports neither matplotlib nor pandas. Adding a figure kind: its functions
(the seven kinds' are in `kinds` and `findings`, drawing with a plot module), one entry here,
and its sweep YAMLs (docs/figures.md, "Adding a figure kind").
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from fnmatch import fnmatch


@dataclass(frozen=True)
class Option:
    """One command-line option of a kind: its flag and `argparse.add_argument`'s keywords."""

    flag: str
    settings: dict = field(default_factory=dict)


def option(flag: str, **settings) -> Option:
    return Option(flag, settings)


@dataclass(frozen=True)
class Kind:
    """One kind of figure: `tpri-plot NAME INPUT [options]`."""

    name: str
    help: str  # one line in `tpri-plot --help`
    caption: str  # what the figure shows (the report page; the figure adds what its lines mean)
    make: str  # "module:function": parsed arguments -> the figures (list of kinds.Output)
    findings: str | None = None  # "module:function": an Output's `facts` -> sentences
    options: tuple[Option, ...] = ()
    sweeps: tuple[str, ...] = ()  # fnmatch patterns of the sweep names drawn as this kind
    sweep_options: dict = field(default_factory=dict)  # sweep name -> its options, e.g. --key lr
    source: str = "runs"  # what INPUT is: "runs" (a dir of runs or results.csv) or "bench" (a csv)


def load(reference: str):
    """The function named by "module:function"."""
    module, name = reference.split(":")
    return getattr(importlib.import_module(module), name)


AVERAGE_OVER = option(
    "--average-over",
    nargs="+",
    default=[],
    metavar="KEY",
    help="keys allowed to vary among the runs drawn together (averaged; named in the header)",
)
MAKE = "tpri.analysis.figures.kinds:"
FINDINGS = "tpri.analysis.figures.findings:"

KINDS = {
    kind.name: kind
    for kind in [
        Kind(
            "convergence",
            "loss and accuracy against iterations and seconds",
            "Train loss and test accuracy against iterations (top) and training seconds (bottom), one"
            " curve per method; its legend entry names its setting and whether it was tuned (then "
            "over which grid, by the rule in the header); X: a run diverged, at the iteration where "
            "it diverged.",
            MAKE + "convergence",
            FINDINGS + "convergence",
            options=(option("--metrics", nargs="+", default=["train_loss", "test_accuracy"]),),
            sweeps=("convergence*", "dtp_*", "targets_comparison*", "mnist_time*", "mnist_momentum*"),
        ),
        Kind(
            "heatmap",
            "a grid of two swept keys, diverged settings marked",
            "Mean over training of the metric for every setting of the grid, mean over seeds; × with "
            "an iteration: a run of that setting diverged there (not scored).",
            MAKE + "heatmap",
            FINDINGS + "heatmap",
            options=(
                option("--value", choices=["auc", "final"], default="auc"),
                option("--metric", default="train_loss"),
                option("--x", default="lr"),
                option("--y", default="reg"),
                AVERAGE_OVER,
            ),
            sweeps=("heatmap*",),
        ),
        Kind(
            "winner",
            "TP vs BP over sequence length x width",
            "Which method family has the larger area under the test-accuracy curve in each cell of "
            "sequence length × width, each tuned by its train-loss area; the number is the signed "
            "margin in percentage points; † counts diverged runs.",
            MAKE + "winner",
            FINDINGS + "winner",
            options=(option("--methods", nargs=2, default=["TP", "BP"], help="two method families"),),
            sweeps=("winner*",),
        ),
        Kind(
            "sensitivity",
            "a metric per value of one swept key",
            "The metric against iterations for each value of one hyperparameter, one panel per "
            "method; X: diverged, at the iteration where it did.",
            MAKE + "sensitivity",
            FINDINGS + "sensitivity",
            options=(
                option("--key", default="lr_target", help="the swept key: lr_target, lr, reg"),
                option("--metric", default="test_accuracy"),
                AVERAGE_OVER,
            ),
            sweeps=("sensitivity*",),
            sweep_options={
                "sensitivity_smoke": ("--key", "lr_target"),
                "sensitivity_lr": ("--key", "lr"),
                "sensitivity_lr_target": ("--key", "lr_target"),
                "sensitivity_reg": ("--key", "reg"),
            },
        ),
        Kind(
            "gradients",
            "adjoint vs displacement norms, norms of W",
            "Per time step and iteration, the norm of BP's adjoints and of TP's target displacements,"
            " both from the same TP run at the same iterations (norms in float64, grey: exactly 0), "
            "then the norm of each method's direction before the step (sum over the RNN's tensors of "
            "the gradient norm, before lr and momentum) and the spectral norm of W.",
            MAKE + "gradients",
            FINDINGS + "gradients",
            options=(option("--job", nargs="+", default=None, help="job dirs relative to RESULTS"),),
            sweeps=("gradients*",),
        ),
        Kind(
            "length_scaling",
            "share of seeds solving against T",
            "Share of seeds that reach the accuracy threshold against the sequence length, each "
            "method at its best setting per length.",
            MAKE + "length_scaling",
            FINDINGS + "length_scaling",
            options=(
                option("--threshold", type=float, default=0.99, help="test accuracy that solves"),
                option("--use", choices=["best", "final"], default="best"),
            ),
            sweeps=("length_scaling*",),
        ),
        Kind(
            "compute",
            "time and memory per iteration (benchmark csv)",
            "Median time per training iteration against T and the width, and the peak memory against "
            "T when the benchmark recorded it.",
            MAKE + "compute",
            FINDINGS + "compute",
            options=(
                option("--hidden", type=int, default=None, help="width of the panels against T"),
                option("--length", type=int, default=None, help="T of the panel against the width"),
            ),
            source="bench",
        ),
    ]
}
NOT_PLOTTED = ("tune_optuna",)  # sweeps that make no figure
DEFAULT = "convergence"  # the figure of a sweep with no name (a plain -m sweep) or no kind


def kind_of(sweep: str) -> Kind | None:
    """The kind drawing sweep `sweep` (a conf/sweep name), None if none."""
    for kind in KINDS.values():
        if any(fnmatch(sweep, pattern) for pattern in kind.sweeps):
            return kind
    return None


def plot_args(sweep: str) -> list[str]:
    """The kind (first) and options that plot sweep `sweep`; KeyError if no kind draws it."""
    kind = kind_of(sweep)
    if kind is None:
        raise KeyError(sweep)
    return [kind.name, *kind.sweep_options.get(sweep, ())]


def plot_command(sweep: str | None, runs) -> str:
    """`tpri-plot KIND RUNS [options]` for the dir `runs` of sweep `sweep` (None: unnamed)."""
    try:
        kind, *options = plot_args(sweep or "")
    except KeyError:
        kind, options = DEFAULT, []
    return " ".join(["tpri-plot", kind, str(runs), *options])


def unplotted(sweeps: list[str]) -> list[str]:
    """The sweeps among `sweeps` that no kind draws and NOT_PLOTTED does not list."""
    return [s for s in sweeps if s not in NOT_PLOTTED and kind_of(s) is None]
