"""Thin wrapper of `tpri-collect`: the runs below a dir as results.csv.

python scripts/collect.py multirun/2024-05-01     # writes multirun/2024-05-01/results.csv
python scripts/collect.py multirun --out results.csv
"""

import sys

from tpri.analysis.figures.cli import collect_main


def main(argv=None) -> int:
    return collect_main(argv, prog="python scripts/collect.py")


if __name__ == "__main__":
    sys.exit(main())
