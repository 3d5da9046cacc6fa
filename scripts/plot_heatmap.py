"""Thin wrapper of `tpri-plot heatmap`: see `python scripts/plot_heatmap.py --help`."""

import sys

from tpri.analysis.figures.cli import plot_main


def main(argv=None) -> int:
    return plot_main(argv, prog="python scripts/plot_heatmap.py", kind="heatmap")


if __name__ == "__main__":
    sys.exit(main())
