"""Thin wrapper of `tpri-plot convergence`: see `python scripts/plot_convergence.py --help`."""

import sys

from tpri.analysis.figures.cli import plot_main


def main(argv=None) -> int:
    return plot_main(argv, prog="python scripts/plot_convergence.py", kind="convergence")


if __name__ == "__main__":
    sys.exit(main())
