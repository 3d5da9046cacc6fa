"""`python -m tpri.analysis.figures ...` is `tpri-plot ...` (no install needed)."""

import sys

from tpri.analysis.figures.cli import plot_main

sys.exit(plot_main(prog="tpri-plot"))
