"""Time per iteration of BP, TP (graph) and TP (local) against T and width, from benchmark.csv.

    python scripts/plot_compute.py outputs/benchmark/benchmark.csv [--out figures]
        [--hidden 100] [--length 120]

Writes compute.png and compute.pdf (default: next to the csv).
"""

import argparse
from pathlib import Path

import pandas as pd

from tpri import figures


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bench", type=Path, help="csv of scripts/benchmark.py")
    parser.add_argument("--out", type=Path, default=None, help="output dir (default: csv's dir)")
    parser.add_argument("--hidden", type=int, default=None, help="width of the time-vs-T panel")
    parser.add_argument("--length", type=int, default=None, help="T of the time-vs-width panel")
    args = parser.parse_args(argv)
    fig = figures.plot_compute(pd.read_csv(args.bench), args.hidden, args.length)
    for path in figures.save(fig, args.out or args.bench.parent, "compute"):
        print(path)


if __name__ == "__main__":
    main()
