"""Thin wrapper of `tpri-plot gradients`: see `python scripts/plot_gradients.py --help`."""

import sys

from tpri.analysis.figures.cli import plot_main


def main(argv=None) -> int:
    return plot_main(argv, prog="python scripts/plot_gradients.py", kind="gradients")


if __name__ == "__main__":
    sys.exit(main())
