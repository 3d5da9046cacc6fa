"""Every figure kind in one place: its name (the `tpri-plot KIND` sub-command, whose plot
function is `tpri.analysis.figures.cli.PLOTS[KIND]`), its caption on the report page, and the sweeps
(`conf/sweep/NAME.yaml`) it draws, with the plot arguments a sweep needs.

    python -m tpri.analysis.figures.registry SWEEP DIR     # plots DIR as SWEEP's figure (make_figures.sh)
    python -m tpri.analysis.figures.registry --kinds        # the kinds, one a line
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from fnmatch import fnmatch


@dataclass(frozen=True)
class Kind:
    """One kind of figure."""

    name: str
    caption: str
    sweeps: tuple[str, ...] = ()  # fnmatch patterns of the sweep names drawn as this kind


KINDS = {
    kind.name: kind
    for kind in [
        Kind(
            "convergence",
            "Train loss and test accuracy against iterations (top) and training seconds (bottom), one"
            " curve per method; its legend entry names its setting and whether it was tuned (then "
            "over which grid, by the rule in the header); X: a run diverged, at the iteration where "
            "it diverged.",
            sweeps=("convergence*", "dtp_*", "targets_comparison*", "mnist_time*", "mnist_momentum*"),
        ),
        Kind(
            "heatmap",
            "Mean over training of the metric for every setting of the grid, mean over seeds; × with "
            "an iteration: a run of that setting diverged there (not scored).",
            sweeps=("heatmap*",),
        ),
        Kind(
            "winner",
            "Which method family has the larger area under the test-accuracy curve in each cell of "
            "sequence length × width, each tuned by its train-loss area; the number is the signed "
            "margin in percentage points; † counts diverged runs.",
            sweeps=("winner*",),
        ),
        Kind(
            "sensitivity",
            "The metric against iterations for each value of one hyperparameter, one panel per "
            "method; X: diverged, at the iteration where it did.",
            sweeps=("sensitivity*",),
        ),
        Kind(
            "gradients",
            "Per time step and iteration, the norm of BP's adjoints and of TP's target displacements,"
            " both from the same TP run at the same iterations (norms in float64, grey: exactly 0), "
            "then the norm of each method's direction before the step (sum over the RNN's tensors of "
            "the gradient norm, before lr and momentum) and the spectral norm of W.",
            sweeps=("gradients*",),
        ),
        Kind(
            "length_scaling",
            "Share of seeds that reach the accuracy threshold against the sequence length, each "
            "method at its best setting per length.",
            sweeps=("length_scaling*",),
        ),
        Kind(
            "compute",
            "Median time per training iteration against T and the width, and the peak memory against "
            "T when the benchmark recorded it.",
            sweeps=(),
        ),
    ]
}
# plot arguments of the sweeps that need some (the swept key of a sensitivity sweep)
SWEEP_ARGS = {
    "sensitivity_smoke": ["--key", "lr_target"],
    "sensitivity_lr": ["--key", "lr"],
    "sensitivity_lr_target": ["--key", "lr_target"],
    "sensitivity_reg": ["--key", "reg"],
}
NOT_PLOTTED = ("tune_optuna",)  # sweeps that make no figure


def kind_of(sweep: str) -> Kind | None:
    """The kind drawing sweep `sweep` (a conf/sweep name), None if none."""
    for kind in KINDS.values():
        if any(fnmatch(sweep, pattern) for pattern in kind.sweeps):
            return kind
    return None


def plot_args(sweep: str) -> list[str]:
    """The `tpri-plot` arguments (kind first, then options) of sweep `sweep`; KeyError if no
    kind draws it."""
    kind = kind_of(sweep)
    if kind is None:
        raise KeyError(sweep)
    return [kind.name, *SWEEP_ARGS.get(sweep, [])]


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv == ["--kinds"]:
        print("\n".join(KINDS))
        return 0
    if len(argv) != 2:
        print("usage: python -m tpri.analysis.figures.registry SWEEP DIR | --kinds", file=sys.stderr)
        return 2
    sweep, runs = argv
    try:
        args = plot_args(sweep)
    except KeyError:
        print(
            f"registry: no figure kind draws sweep {sweep} (add it to tpri.analysis.figures.registry)",
            file=sys.stderr,
        )
        return 2
    from tpri.analysis.figures.cli import plot_main  # the plot functions import matplotlib: only here

    return plot_main([args[0], runs, *args[1:]], prog=f"tpri-plot {args[0]}")


if __name__ == "__main__":
    sys.exit(main())
