"""Which setting of each method a comparison draws, and why: the grid each method was tuned
over, the rule that picked its setting, the setting picked and whether it sits at an end of
its grid.

    best, choices = select(jobs, by=["method"], score="auc_train_loss")
    choices[0].text()      # 'lr=0.01, tuned over lr ∈ {1e-05, 0.001, 0.1}' or 'single setting, not tuned'

`jobs` is one row per job (`collect.summarize`). The figures put `Choice.text()` in each
method's legend entry, the rule in the header, and `choices_table` in the sidecar files.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from tpri.analysis.collect import best_configs, swept_keys

UNTUNED = "single setting, not tuned"


def _fmt(value) -> str:
    if isinstance(value, (int, float, np.number)) and not isinstance(value, bool):
        return f"{value:g}"
    return str(value)


@dataclass
class Choice:
    """The setting chosen for one group (a method, or a method in one cell of a grid)."""

    group: dict  # the values of the group's keys, e.g. {"method": "TP"}
    values: dict  # tuned key -> chosen value
    grid: dict  # tuned key -> the values tried, sorted
    runs: int  # runs of the chosen setting
    diverged_other: int = 0  # diverged runs of the settings not chosen
    edge: list[str] = field(default_factory=list)  # keys whose value is an end of its grid
    hyper: dict = field(default_factory=dict)  # the optimizer's step sizes etc. as run

    @property
    def tuned(self) -> bool:
        return bool(self.grid)

    def setting(self) -> str:
        """'lr=0.01' (the chosen values), '' when nothing was tuned."""
        return ", ".join(f"{k}={_fmt(v)}" for k, v in self.values.items())

    def hyper_text(self) -> str:
        """'lr=1e-05, momentum=0.9': the optimizer's numbers as run."""
        return ", ".join(f"{k}={_fmt(v)}" for k, v in self.hyper.items())

    def setting_of(self, keys: list[str]) -> str:
        return ", ".join(f"{k}={_fmt(self.values[k])}" for k in keys)

    def text(self) -> str:
        """The legend's words for this choice: 'lr=0.01, tuned over lr ∈ {...}'."""
        if not self.tuned:
            return f"{UNTUNED} ({self.hyper_text()})" if self.hyper else UNTUNED
        grids = "; ".join(f"{k} ∈ {{{grid_text(v)}}}" for k, v in self.grid.items())
        edge = f"; at the edge of its grid ({', '.join(self.edge)})" if self.edge else ""
        return f"{self.setting()}, tuned over {grids}{edge}"

    def row(self) -> dict:
        """One row of the sidecar table."""
        return {
            **self.group,
            "chosen": self.setting() or UNTUNED,
            "hyperparameters": self.hyper_text(),
            "grid": "; ".join(f"{k}: {grid_text(v)}" for k, v in self.grid.items()),
            "at_edge": ", ".join(self.edge),
            "runs": self.runs,
            "diverged_other_settings": self.diverged_other,
        }


def runs_text(n: int) -> str:
    """'1 run', '3 runs'."""
    return f"{n} run" if n == 1 else f"{n} runs"


def _group_text(choice: Choice) -> str:
    return " ".join(_fmt(v) for v in choice.group.values())


def grid_text(values: list) -> str:
    text = [_fmt(v) for v in values]
    return ", ".join(text) if len(text) <= 7 else f"{text[0]}..{text[-1]} ({len(text)} values)"


def tuned_keys(jobs: pd.DataFrame, by: list[str]) -> list[str]:
    """The keys that vary among the jobs of one group (not the seed, not `by`), without the
    copies of another key (e.g. optimizer.lr interpolating lr): shortest name kept."""
    keys = sorted((k for k in swept_keys(jobs) if k not in by and k != "seed"), key=lambda k: (len(k), k))
    kept = []
    for key in keys:
        values = jobs[key].astype(str)
        if not any(values.equals(jobs[k].astype(str)) for k in kept):
            kept.append(key)
    return kept


HYPER = ("lr", "lr_target", "reg", "momentum", "lr_reverse")  # optimizer.* keys worth naming


def _hyper(chosen: pd.DataFrame) -> dict:
    """The numeric optimizer settings of the chosen runs (`optimizer.lr`, ...), as run."""
    row = chosen.iloc[0]
    out = {}
    for key in HYPER:
        value = row.get(f"optimizer.{key}")
        if isinstance(value, (int, float, np.number)) and not isinstance(value, bool) and value == value:
            out[key] = value
    return out


def _choice(group: dict, jobs: pd.DataFrame, chosen: pd.DataFrame, by: list[str]) -> Choice:
    keys = tuned_keys(jobs, by)
    grid = {k: sorted(jobs[k].dropna().unique()) for k in keys}
    values = {k: chosen[k].iloc[0] for k in keys}
    edge = [k for k in keys if len(grid[k]) > 1 and values[k] in (grid[k][0], grid[k][-1])]
    other = jobs[~jobs["job_dir"].isin(chosen["job_dir"])]
    return Choice(
        hyper=_hyper(chosen),
        group=group,
        values=values,
        grid=grid,
        runs=len(chosen),
        diverged_other=int(other["status"].eq("diverged").sum()),
        edge=edge,
    )


def select(
    jobs: pd.DataFrame, by: list[str], score: str = "auc_train_loss", higher: bool = False
) -> tuple[pd.DataFrame, list[Choice]]:
    """The jobs of the best setting per group `by` (see `collect.best_configs`) and, per
    group, what was chosen among which settings."""
    best = best_configs(jobs, by=by, score=score, higher=higher)
    choices = []
    for key, group_jobs in jobs.groupby(by, dropna=False, sort=True):
        key = key if isinstance(key, tuple) else (key,)
        group = dict(zip(by, key))
        mask = np.logical_and.reduce([best[k].eq(v) if v == v else best[k].isna() for k, v in group.items()])
        chosen = best[mask]
        if len(chosen):
            choices.append(_choice(group, group_jobs, chosen, by))
    return best, choices


def choice_of(choices: list[Choice], **group) -> Choice | None:
    """The choice of the group with these values, None if there is none."""
    for choice in choices:
        if all(choice.group.get(k) == v for k, v in group.items()):
            return choice
    return None


def choices_table(choices: list[Choice]) -> pd.DataFrame:
    """One row per group: the chosen setting, the grid, the keys at an edge, the runs."""
    return pd.DataFrame([c.row() for c in choices])


def edge_note(choices: list[Choice]) -> str | None:
    """'at the edge of its grid: BP lr=1e-05' for the header and findings, None if none."""
    edges = [f"{_group_text(c)} {c.setting_of(c.edge)}" for c in choices if c.edge]
    return f"choice at the edge of its grid (widen it): {'; '.join(edges)}" if edges else None
