"""Thin wrapper of `tpri-plot compute`: see `python scripts/plot_compute.py --help`."""

import sys

from tpri.analysis.figures.cli import plot_main


def main(argv=None) -> int:
    return plot_main(argv, prog="python scripts/plot_compute.py", kind="compute")


if __name__ == "__main__":
    sys.exit(main())
