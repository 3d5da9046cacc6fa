"""Sensitivity of test accuracy to one hyperparameter: one line per value, one panel per method.

    python scripts/plot_sensitivity.py multirun/sensitivity --key lr_target|lr|reg
        [--metric test_accuracy] [--out figures] [--where ...]

Writes sensitivity_<key>.png and .pdf.
"""

from tpri import figures


def main(argv=None) -> None:
    parser = figures.parser(__doc__.splitlines()[0])
    parser.add_argument("--key", default="lr_target", help="the swept key: lr_target, lr, reg")
    parser.add_argument("--metric", default="test_accuracy")
    args = parser.parse_args(argv)
    fig = figures.plot_sensitivity(figures.load_args(args), args.key, args.metric)
    figures.write(fig, args, f"sensitivity_{args.key}")


if __name__ == "__main__":
    main()
