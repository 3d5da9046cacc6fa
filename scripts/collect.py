"""Collect the runs below a dir (single runs, multiruns, folders of them) into results.csv.

    python scripts/collect.py multirun/2024-05-01     # writes multirun/2024-05-01/results.csv
    python scripts/collect.py multirun --out results.csv
"""

import argparse
from pathlib import Path

import pandas as pd

from tpri.collect import write_results


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", type=Path, help="dir searched recursively for job dirs")
    parser.add_argument("--out", type=Path, default=None,
                        help="csv path (default: ROOT/results.csv)")
    args = parser.parse_args(argv)
    out = write_results(args.root, args.out)
    df = pd.read_csv(out)
    jobs = df.drop_duplicates("job_dir")
    counts = ", ".join(f"{n} {status}" for status, n in jobs["status"].value_counts().items())
    print(f"{len(jobs)} jobs ({counts or 'none'}), {len(df)} rows -> {out}")


if __name__ == "__main__":
    main()
