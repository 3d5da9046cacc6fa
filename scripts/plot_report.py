"""Thin wrapper of `tpri-plot report`: see `python scripts/plot_report.py --help`."""

import sys

from tpri.analysis.figures.cli import plot_main


def main(argv=None) -> int:
    return plot_main(argv, prog="python scripts/plot_report.py", kind="report")


if __name__ == "__main__":
    sys.exit(main())
