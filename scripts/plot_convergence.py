"""Train loss and test accuracy against iterations and seconds, one line per method.

    python scripts/plot_convergence.py multirun/temporal_order [--out figures]
        [--where dataset.length=60] [--metrics train_loss test_accuracy]

Each method shows its configuration with the smallest area under the train-loss curve,
mean ± std over seeds. Writes convergence.png and convergence.pdf.
"""

from tpri import figures


def main(argv=None) -> None:
    parser = figures.parser(__doc__.splitlines()[0])
    parser.add_argument("--metrics", nargs="+", default=["train_loss", "test_accuracy"])
    args = parser.parse_args(argv)
    fig = figures.plot_convergence(figures.load_args(args), args.metrics)
    figures.write(fig, args, "convergence")


if __name__ == "__main__":
    main()
