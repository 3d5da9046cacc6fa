"""Winner of TP vs BP over sequence length T x width d (each tuned by its train-loss area).

    python scripts/plot_winner.py multirun/mnist_winner [--out figures] [--methods TP BP]

T is 784 / dataset.size_chunk for MNIST, 64 / size_chunk for digits, else dataset.length.
Writes winner.png, winner.pdf and winner.csv (the table behind the figure).
"""

from tpri import figures


def main(argv=None) -> None:
    parser = figures.parser(__doc__.splitlines()[0])
    parser.add_argument("--methods", nargs=2, default=["TP", "BP"], help="two method families")
    args = parser.parse_args(argv)
    fig, table = figures.plot_winner(figures.load_args(args), tuple(args.methods))
    print(table.to_string(index=False))
    figures.write(fig, args, "winner")
    out = (args.out or figures.results_dir(args)) / "winner.csv"
    table.to_csv(out, index=False)
    print(out)


if __name__ == "__main__":
    main()
