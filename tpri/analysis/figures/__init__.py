"""The paper's figures from the table of runs of `tpri.analysis.collect`.

    df = collect("multirun/mnist_heatmap")
    fig, diverged = plot_heatmap(df)          # lr x reg, diverged cells hatched and marked ×
    save(fig, "figures", "heatmap")           # figures/heatmap.png and .pdf (TrueType fonts)

Every plot function takes the runs of one task (a UsageError names the tasks otherwise; the
command line `tpri-plot` draws one figure per task) and returns a matplotlib Figure, rendered
off-screen with no pyplot state and no global style change, sometimes with the numbers it
drew. Each figure's header names the task as run, T, d, batch, iterations and seeds.
"""

import importlib
import os
import tempfile


def _matplotlib_config_dir() -> None:
    """Matplotlib prints two warning lines when it cannot write its config dir (~/.config/
    matplotlib: no HOME, an unprivileged user): give it a per-user folder in the temp dir."""
    if "MPLCONFIGDIR" in os.environ:
        return
    config = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    folder = os.path.join(config, "matplotlib")
    existing = next(p for p in (folder, config, os.path.dirname(config), "/") if os.path.isdir(p))
    if not (os.path.isabs(folder) and os.access(existing, os.W_OK | os.X_OK)):
        uid = os.getuid() if hasattr(os, "getuid") else 0
        os.environ["MPLCONFIGDIR"] = os.path.join(tempfile.gettempdir(), f"tpri-matplotlib-{uid}")


_matplotlib_config_dir()

# public name -> its module, imported on first use: reading the registry imports no matplotlib
_HOME = {
    **dict.fromkeys(["plot_convergence", "plot_gradients", "plot_sensitivity"], "curves"),
    **dict.fromkeys(["plot_heatmap", "plot_winner", "winner_table"], "grids"),
    **dict.fromkeys(["plot_compute", "plot_length_scaling", "solved_table"], "scaling"),
    **dict.fromkeys(["METHOD_STYLES", "header_text", "label", "method_style", "save"], "style"),
    **dict.fromkeys(["split_tasks", "with_task"], "tasks"),
}
__all__ = sorted(_HOME)


def __getattr__(name: str):
    if name not in _HOME:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_HOME[name]}"), name)
