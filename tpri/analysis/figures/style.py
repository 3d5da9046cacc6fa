"""How every figure looks: one colour, line style and marker per method, axis labels with the
paper's symbols, power-of-ten tick labels, a header, and saving with embedded TrueType fonts.

Nothing here changes matplotlib's global state: figures are built and saved inside
`matplotlib.rc_context(RC)`.
"""

from __future__ import annotations

import functools
import io
import math
import numbers
import re
import textwrap
import zlib
from dataclasses import dataclass
from pathlib import Path

import matplotlib
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogFormatterSciNotation, LogLocator, NullFormatter

from tpri.io import save_bytes

RC = {
    "pdf.fonttype": 42,  # TrueType fonts in PDFs (editable, accepted by publishers)
    "ps.fonttype": 42,
    "font.size": 9,
    "axes.titlesize": 9,
    "axes.labelsize": 9,
    "legend.fontsize": 8,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
}

LABELS = {
    "lr": r"step size $\gamma_\theta$ (lr)",
    "lr_target": r"target step $\gamma_h$ (lr_target)",
    "reg": r"regularization $r$ (reg)",
    "model.hidden": r"width $d$",
    "hidden": r"width $d$",
    "T": r"sequence length $T$",
    "dataset.length": r"sequence length $T$",
    "iteration": "iteration",
    "time": "training time (s)",
    "train_loss": "train loss",
    "train_accuracy": "train accuracy",
    "test_loss": "test loss",
    "test_accuracy": "test accuracy",
    "test_perplexity": "test perplexity",
    "update_norm": r"update norm $\Vert W_{k+1} - W_k\Vert_F$",
    "adjoint_norm": r"BP adjoint norm $\Vert\partial\ell/\partial h_t\Vert$",
    "displacement_norm": r"TP displacement norm $\Vert v_t - h_t\Vert$",
    "direction_norm": "direction norm Σ‖grad‖ of the RNN\n(before lr and momentum)",
    "w_spectral_norm": r"spectral norm $\Vert W\Vert_2$",
}


MATHTEXT = {
    r"\Vert ": "‖",
    r"\partial ": "∂",
    r"\gamma_\theta": "γ_θ",
    r"\gamma_h": "γ_h",
    r"\Vert": "‖",
    r"\partial": "∂",
    r"\ell": "ℓ",
    r"\times": "×",
    "{": "",
    "}": "",
}


def plain(text: str) -> str:
    """Figure text without matplotlib's mathtext markup: '$\\gamma_h$' -> 'γ_h'."""

    def unmath(match: re.Match) -> str:
        inner = match.group(1)
        for markup, symbol in MATHTEXT.items():
            inner = inner.replace(markup, symbol)
        return inner

    return re.sub(r"\$([^$]*)\$", unmath, text)


def readable(key: str) -> str:
    """A column's label as plain text on one line (findings, captions): 'train loss'."""
    return " ".join(plain(label(key)).split())


@dataclass(frozen=True)
class Style:
    """How one method is drawn, the same in every figure."""

    color: str
    linestyle: str
    marker: str
    linewidth: float = 1.6

    def line(self) -> dict:
        return dict(
            color=self.color,
            linestyle=self.linestyle,
            marker=self.marker,
            linewidth=self.linewidth,
            markersize=4,
        )


# Okabe-Ito colours (colour-blind safe); solid lines for the paper's methods, dashed or
# dotted for variants so that a variant drawn over its base stays visible
METHOD_STYLES = {
    "TP": Style("#0072B2", "-", "o", 2.2),
    "TP (difference)": Style("#56B4E9", "--", "s"),
    "TP (local)": Style("#009E73", "-.", "^"),
    "TP (Adam)": Style("#009E73", ":", "v"),
    "BP": Style("#D55E00", "-", "D", 2.2),
    "BP (SGD, Nesterov 0.9)": Style("#D55E00", "-", "D", 2.2),
    "BP (SGD)": Style("#E69F00", "--", "v"),
    "BP (Adam)": Style("#CC79A7", ":", "P"),
    "DTP-PI": Style("#000000", ":", "X"),
    "DTP-PI (Nesterov 0.9)": Style("#000000", ":", "X"),  # the authors' DTP on the synthetic tasks
    "plain RNN": Style("#777777", "--", "*"),
}
_SPARE = [
    Style(c, ls, m)
    for c, ls, m in [
        ("#F0E442", "--", "h"),
        ("#8C564B", "-.", "p"),
        ("#17BECF", ":", "<"),
        ("#7F7F7F", "--", ">"),
        ("#BCBD22", "-.", "d"),
        ("#9467BD", ":", "8"),
    ]
]
# one style per value of a swept key (sensitivity): distinct hue, line style and marker
VALUE_STYLES = [
    Style(c, ls, m)
    for c, ls, m in [
        ("#0072B2", "-", "o"),
        ("#D55E00", "--", "s"),
        ("#009E73", "-.", "^"),
        ("#CC79A7", ":", "D"),
        ("#E69F00", "-", "v"),
        ("#56B4E9", "--", "P"),
        ("#000000", "-.", "X"),
        ("#8C564B", ":", "h"),
    ]
]
DIVERGED_MARK = dict(
    marker="X", markersize=9, markeredgecolor="black", markeredgewidth=0.8, linestyle="none", zorder=5
)


def method_style(method: str) -> Style:
    """The style of a method label; unknown labels get a spare style fixed by their name."""
    if method in METHOD_STYLES:
        return METHOD_STYLES[method]
    return _SPARE[zlib.crc32(method.encode()) % len(_SPARE)]


def label(key: str) -> str:
    """The axis label of a column, with the paper's symbols and units."""
    return LABELS.get(key, key)


def _power_of_ten(value) -> int | None:
    """k if `value` is 10^k, else None."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or value <= 0:
        return None
    exponent = math.log10(value)
    return round(exponent) if abs(exponent - round(exponent)) < 1e-9 else None


def tick_labels(values) -> list[str]:
    """Labels of config values on one axis or legend, all in one format: $10^{k}$ when every
    value is a power of ten and one of them is below 0.1 or above 100, else plain numbers."""
    values = list(values)
    powers = [_power_of_ten(v) for v in values]
    if values and all(p is not None for p in powers) and any(abs(p) >= 2 for p in powers):
        return [rf"$10^{{{p}}}$" for p in powers]
    return [f"{v:.3g}" if isinstance(v, numbers.Real) and not isinstance(v, bool) else str(v) for v in values]


def value_text(value) -> str:
    """A config value as plain text: numbers with %g, anything else as its string."""
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        return f"{value:g}"
    return str(value)


def fmt(value) -> str:
    """The label of one config value (see `tick_labels`)."""
    return tick_labels([value])[0]


def log_axis(axis, values=None) -> None:
    """Tick labels of a log axis in one format: powers of ten ($10^{k}$, major ticks only) when
    `values` span two decades or more, else plain numbers at 1, 2, 5 x 10^k."""
    positive = [v for v in (values if values is not None else []) if v == v and v > 0]
    if not positive or max(positive) / min(positive) >= 100:
        axis.set_major_formatter(LogFormatterSciNotation())
        axis.set_minor_formatter(NullFormatter())
        return
    axis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    axis.set_minor_formatter(NullFormatter())


def spans_decades(values) -> bool:
    """Whether positive values span at least a factor 10 (then a log axis reads better)."""
    positive = [v for v in values if v == v and v > 0]
    return len(positive) > 1 and max(positive) / min(positive) >= 10


def styled(plot):
    """Run a plot function inside the figures' rc_context (no global style change)."""

    @functools.wraps(plot)
    def wrapper(*args, **kwargs):
        with matplotlib.rc_context(RC):
            return plot(*args, **kwargs)

    return wrapper


def new_figure(nrows: int = 1, ncols: int = 1, width: float = 4.2, height: float = 3.2, **kwargs):
    """A Figure (off-screen, no pyplot state) and its 2-d array of axes."""
    fig = Figure(figsize=(width * ncols, height * nrows + 0.6), layout="constrained")
    return fig, fig.subplots(nrows, ncols, squeeze=False, **kwargs)


def set_header(fig: Figure, title: str, lines: list[str]) -> None:
    """The figure's header: what it shows, then the task, budget and seeds lines."""
    width = max(60, int(fig.get_figwidth() * 17))  # characters of 9-pt text across the figure
    wrapped = [part for line in [title, *lines] for part in textwrap.wrap(line, width) or [""]]
    fig.suptitle("\n".join(wrapped), fontsize=9, linespacing=1.35)
    fig.tpri_header = [title, *lines]  # the lines before wrapping, for captions and tests


def header_text(fig: Figure) -> str:
    """The text of the header (for captions and tests)."""
    if hasattr(fig, "tpri_header"):
        return "\n".join(fig.tpri_header)
    return fig._suptitle.get_text() if fig._suptitle is not None else ""


def save(fig: Figure, out_dir: str | Path, name: str) -> list[Path]:
    """Write `name.png` and `name.pdf` (TrueType fonts) in `out_dir`; returns their paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / f"{name}.{ext}" for ext in ("png", "pdf")]
    with matplotlib.rc_context(RC):
        for path in paths:  # drawn in memory, then written atomically: a failure keeps the old file
            buffer = io.BytesIO()
            fig.savefig(buffer, format=path.suffix[1:], dpi=150, bbox_inches="tight")
            save_bytes(buffer.getvalue(), path)
    return paths
