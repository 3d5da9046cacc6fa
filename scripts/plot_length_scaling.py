"""Thin wrapper of `tpri-plot length_scaling`: see `python scripts/plot_length_scaling.py --help`."""

import sys

from tpri.analysis.figures.cli import plot_main


def main(argv=None) -> int:
    return plot_main(argv, prog="python scripts/plot_length_scaling.py", kind="length_scaling")


if __name__ == "__main__":
    sys.exit(main())
