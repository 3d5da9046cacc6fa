"""The analysis layer: reads finished run directories, never trains.

Modules: `collect` (one table of runs from job directories), `figures` (the paper's figures,
their registry and the `tpri-plot` command line) and `benchmark` (speed and memory of TP
against BP, `tpri-benchmark`).
"""
