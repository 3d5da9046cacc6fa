"""Thin wrapper of `tpri-plot winner`: see `python scripts/plot_winner.py --help`."""

import sys

from tpri.analysis.figures.cli import plot_main


def main(argv=None) -> int:
    return plot_main(argv, prog="python scripts/plot_winner.py", kind="winner")


if __name__ == "__main__":
    sys.exit(main())
