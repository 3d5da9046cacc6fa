"""Heatmap of a lr x reg sweep: area under the train-loss curve, diverged cells marked x.

    python scripts/plot_heatmap.py multirun/mnist_heatmap [--out figures]
        [--value auc|final] [--metric train_loss] [--x lr] [--y reg] [--where ...]

Writes heatmap.png and heatmap.pdf, and prints the diverged cells.
"""

from tpri import figures


def main(argv=None) -> None:
    parser = figures.parser(__doc__.splitlines()[0])
    parser.add_argument("--value", choices=["auc", "final"], default="auc")
    parser.add_argument("--metric", default="train_loss")
    parser.add_argument("--x", default="lr")
    parser.add_argument("--y", default="reg")
    args = parser.parse_args(argv)
    fig, diverged = figures.plot_heatmap(figures.load_args(args), args.x, args.y, args.metric,
                                         args.value)
    for method, x, y in sorted(diverged):
        print(f"diverged: {method} {args.x}={x:g} {args.y}={y:g}")
    figures.write(fig, args, "heatmap")


if __name__ == "__main__":
    main()
