"""BP adjoint norms vs TP displacement norms per time step, update and spectral norms.

    python scripts/plot_gradients.py multirun/gradients [--job 0 1] [--out figures]

Reads gradients.csv (runs trained with log_gradients=true) of the --job dirs (relative to
RESULTS), by default of the first TP and the first BP job that logged them.
Writes gradients.png and gradients.pdf.
"""

from tpri import figures
from tpri.collect import read_gradients


def main(argv=None) -> None:
    parser = figures.parser(__doc__.splitlines()[0])
    parser.add_argument("--job", nargs="+", default=None, help="job dirs relative to RESULTS")
    args = parser.parse_args(argv)
    df = figures.load_args(args)
    grads = read_gradients(df, figures.results_dir(args), args.job)
    fig = figures.plot_gradients(grads, df[df["job_dir"].isin(grads["job_dir"])])
    figures.write(fig, args, "gradients")


if __name__ == "__main__":
    main()
