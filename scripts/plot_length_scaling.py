"""Share of seeds solving temporal order / adding against the sequence length T, per method.

    python scripts/plot_length_scaling.py multirun/lengths [--threshold 0.99]
        [--use best|final] [--out figures] [--where dataset.name=adding]

Writes length_scaling.png and length_scaling.pdf.
"""

from tpri import figures


def main(argv=None) -> None:
    parser = figures.parser(__doc__.splitlines()[0])
    parser.add_argument("--threshold", type=float, default=0.99, help="test accuracy that solves")
    parser.add_argument("--use", choices=["best", "final"], default="best")
    args = parser.parse_args(argv)
    fig, table = figures.plot_length_scaling(figures.load_args(args), args.threshold, args.use)
    print(table.to_string(index=False))
    figures.write(fig, args, "length_scaling")


if __name__ == "__main__":
    main()
