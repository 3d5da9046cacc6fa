"""The paper's figures from the table of runs of `tpri.collect`.

    df = collect("multirun/mnist_heatmap")
    fig, diverged = plot_heatmap(df)          # lr x reg, diverged cells hatched and marked ×
    save(fig, "figures", "heatmap")           # figures/heatmap.png and .pdf (TrueType fonts)

Every plot function takes the runs of one task (a UsageError names the tasks otherwise; the
command line `tpri-plot` draws one figure per task) and returns a matplotlib Figure, rendered
off-screen with no pyplot state and no global style change, sometimes with the numbers it
drew. Each figure's header names the task as run, T, d, batch, iterations and seeds.
"""

from tpri.figures.curves import plot_convergence, plot_gradients, plot_sensitivity
from tpri.figures.grids import plot_heatmap, plot_winner, winner_table
from tpri.figures.scaling import plot_compute, plot_length_scaling, solved_table
from tpri.figures.style import METHOD_STYLES, header_text, label, method_style, save
from tpri.figures.tasks import split_tasks, with_task

__all__ = [
    "METHOD_STYLES",
    "header_text",
    "label",
    "method_style",
    "plot_compute",
    "plot_convergence",
    "plot_gradients",
    "plot_heatmap",
    "plot_length_scaling",
    "plot_sensitivity",
    "plot_winner",
    "save",
    "solved_table",
    "split_tasks",
    "winner_table",
    "with_task",
]
