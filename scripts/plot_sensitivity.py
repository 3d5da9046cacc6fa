"""Thin wrapper of `tpri-plot sensitivity`: see `python scripts/plot_sensitivity.py --help`."""

import sys

from tpri.analysis.figures.cli import plot_main


def main(argv=None) -> int:
    return plot_main(argv, prog="python scripts/plot_sensitivity.py", kind="sensitivity")


if __name__ == "__main__":
    sys.exit(main())
